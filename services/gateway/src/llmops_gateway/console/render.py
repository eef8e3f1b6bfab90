"""Rendering console pages: one Jinja2 environment (autoescaped), and headers that keep pages out of caches and
other sites' frames, and scripts to the console's own files."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

SECURITY_HEADERS = {
    # Only the console's own scripts and styles: an injected <script> or inline handler does not run.
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    # A page may show a key's secret once: never keep a copy in a cache or the back-forward history.
    "cache-control": "no-store",
}


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def money(value: Decimal | str | None) -> str:
    """``0.000032``: an exact amount, never ``3.2E-5`` (Decimal's own str)."""
    if value is None:
        return "0"
    return format(Decimal(value).normalize(), "f")


templates.env.filters["when"] = _when
templates.env.filters["money"] = money
templates.env.filters["percent"] = _percent


def page(request: Request, name: str, *, status: int = 200, **context) -> Response:
    session = getattr(request.state, "console_session", None)
    context.setdefault("csrf_token", session.csrf if session else None)
    context.setdefault("signed_in", session is not None)
    context.setdefault("identity", session.identity if session else None)
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response
