"""Bearer tokens between services and on admin APIs: compared in constant time, never logged."""

import hmac

from starlette.requests import Request

from llmops_common.errors import APIError


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``; empty when there is none or another scheme."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def token_matches(token: str, secret: str) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), secret.encode())


def unauthorized(message: str, *, code: str = "invalid_token") -> APIError:
    return APIError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


def require_token(request: Request, secret: str, *, code: str = "invalid_token") -> None:
    """Refuses (401) a request that does not carry ``secret``, the admin token unless said otherwise."""
    if not token_matches(bearer_token(request), secret):
        raise unauthorized("admin token required", code=code)
