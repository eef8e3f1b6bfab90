"""Dependencies: the session, and who is calling (admin, or the gateway on behalf of a key)."""

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_feedback.state import FeedbackState

KEY_ID_HEADER = "x-llmops-key-id"


async def get_state(request: Request) -> FeedbackState:
    return request.app.state.feedback


StateDep = Annotated[FeedbackState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True)
class Caller:
    admin: bool
    key_id: str | None  # set when the gateway acts for a client key: that key's requests only


def _bearer(request: Request) -> str:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _matches(token: str, secret: str) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), secret.encode())


def _unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_token", headers={"WWW-Authenticate": "Bearer"})


async def require_admin(request: Request, state: StateDep) -> Caller:
    if not _matches(_bearer(request), state.admin_token):
        raise _unauthorized("admin token required")
    return Caller(admin=True, key_id=None)


async def require_ingest(request: Request, state: StateDep) -> Caller:
    token = _bearer(request)
    if _matches(token, state.ingest_token):
        return Caller(admin=False, key_id=None)
    if _matches(token, state.admin_token):
        return Caller(admin=True, key_id=None)
    raise _unauthorized("ingest or admin token required")


async def require_rater(request: Request, state: StateDep) -> Caller:
    """The admin rates any request; the gateway (ingest token) rates for the key named in the header."""
    token = _bearer(request)
    if _matches(token, state.admin_token):
        return Caller(admin=True, key_id=None)
    if _matches(token, state.ingest_token):
        key_id = request.headers.get(KEY_ID_HEADER)
        if not key_id:
            raise APIError(400, f"{KEY_ID_HEADER} header required with the ingest token", code="missing_key_id")
        return Caller(admin=False, key_id=key_id)
    raise _unauthorized("admin or ingest token required")


AdminDep = Annotated[Caller, Depends(require_admin)]
IngestDep = Annotated[Caller, Depends(require_ingest)]
RaterDep = Annotated[Caller, Depends(require_rater)]
