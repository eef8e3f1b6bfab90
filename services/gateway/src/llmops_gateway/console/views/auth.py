"""Sign-in with the platform admin token or an admin identity's token (failed attempts limited per client address),
and sign-out. Before a session exists, the sign-in form's CSRF token is a
double-submit cookie (a site that posts a form here cannot read or set it)."""

import secrets
from urllib.parse import unquote

from fastapi import APIRouter, Request
from redis.exceptions import RedisError
from starlette.responses import RedirectResponse, Response

from llmops_common.errors import APIError
from llmops_gateway.admin.auth import identify_token
from llmops_gateway.console.backends import BackendError
from llmops_gateway.console.deps import CSRF_FIELD, SESSION_COOKIE, ConsoleDep, FormDep, read_form
from llmops_gateway.console.render import page
from llmops_gateway.console.sessions import tokens_match

router = APIRouter(prefix="/console", include_in_schema=False)

SIGN_IN_COOKIE = "llmops_console_signin"
SIGN_IN_SURFACE = "console"  # failed sign-ins' label in the lockout's counts and metrics


def _safe_next(value: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    path = unquote(value or "")
    if path.startswith("/console/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/console/"


def _sign_in_page(request: Request, console, *, next_path: str, error: str | None = None, status: int = 200):
    token = secrets.token_urlsafe(32)
    response = page(request, "login.html", status=status, sign_in_token=token, next_path=next_path, error=error)
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=3600,
        path="/console/",
        httponly=True,
        samesite="strict",
        secure=console.secure_cookie,
    )
    return response


def _client_address(request: Request, header: str | None) -> str:
    """The address the sign-in limit counts: the last entry of the proxy's header when one is configured (the one
    the trusted proxy appended; entries before it are the client's to forge), else the connection's peer."""
    forwarded = request.headers.get(header, "") if header else ""
    last = forwarded.rsplit(",", 1)[-1].strip()
    if last:
        return last[:64]
    return request.client.host if request.client else "unknown"


@router.get("/login")
async def sign_in_form(request: Request, console: ConsoleDep, next: str | None = None) -> Response:
    return _sign_in_page(request, console, next_path=_safe_next(next))


@router.post("/login")
async def sign_in(request: Request, console: ConsoleDep) -> Response:
    form = await read_form(request)
    next_path = _safe_next(form.get("next"))
    if not tokens_match(form.get(CSRF_FIELD), request.cookies.get(SIGN_IN_COOKIE, "")):
        message = "The sign-in form expired or did not come from this console. Try again."
        return _sign_in_page(request, console, next_path=next_path, error=message, status=403)
    address = _client_address(request, console.client_ip_header)
    gateway = request.app.state.gateway
    given = form.get("admin_token")
    try:
        try:
            await console.sign_in_limiter.check(SIGN_IN_SURFACE, address)
        except APIError as refused:  # the 429 of the API's lockout, as a page
            wait_s = refused.headers["Retry-After"]
            message = f"Too many failed sign-ins from this address. Try again in {wait_s} s."
            response = _sign_in_page(request, console, next_path=next_path, error=message, status=429)
            response.headers["retry-after"] = wait_s
            return response
        identity = None
        if isinstance(given, str) and given and len(given) <= 200:
            identity = await identify_token(  # the platform admin token, or an admin identity's token
                given.strip(),
                admin_token=gateway.admin_token,
                key_secret=gateway.authenticator.key_secret,
                previous_key_secrets=gateway.authenticator.previous_key_secrets,
                sessions=gateway.sessions,
            )
        if identity is None:
            await console.sign_in_limiter.failed(SIGN_IN_SURFACE, address)
            error = "That admin token is not right."
            return _sign_in_page(request, console, next_path=next_path, error=error, status=401)
        await console.sign_in_limiter.succeeded(SIGN_IN_SURFACE, address)
        token, _ = await console.sessions.open(identity)
    except RedisError:
        raise BackendError("redis", "unreachable: console sessions live there") from None
    if identity.team is not None and next_path == "/console/":
        next_path = "/console/keys"  # a team-admin's start: its team's keys
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=console.sessions.ttl_s,
        path="/console/",
        httponly=True,
        samesite="strict",
        secure=console.secure_cookie,
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/console/")
    return response


@router.post("/logout")
async def sign_out(request: Request, console: ConsoleDep, _: FormDep) -> Response:
    try:
        await console.sessions.close(request.cookies.get(SESSION_COOKIE))
    except RedisError:
        raise BackendError("redis", "unreachable: console sessions live there") from None
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console/")
    return response
