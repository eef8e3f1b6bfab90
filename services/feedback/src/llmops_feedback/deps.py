"""Dependencies: the session, and who is calling (admin, or the gateway on behalf of a key)."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.auth import bearer_token, require_token, token_matches, unauthorized
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


async def require_admin(request: Request, state: StateDep) -> Caller:
    require_token(request, state.admin_token)
    return Caller(admin=True, key_id=None)


async def require_ingest(request: Request, state: StateDep) -> Caller:
    token = bearer_token(request)
    if token_matches(token, state.ingest_token):
        return Caller(admin=False, key_id=None)
    if token_matches(token, state.admin_token):
        return Caller(admin=True, key_id=None)
    raise unauthorized("ingest or admin token required")


async def require_rater(request: Request, state: StateDep) -> Caller:
    """The admin rates any request; the gateway (ingest token) rates for the key named in the header."""
    token = bearer_token(request)
    if token_matches(token, state.admin_token):
        return Caller(admin=True, key_id=None)
    if token_matches(token, state.ingest_token):
        key_id = request.headers.get(KEY_ID_HEADER)
        if not key_id:
            raise APIError(400, f"{KEY_ID_HEADER} header required with the ingest token", code="missing_key_id")
        return Caller(admin=False, key_id=key_id)
    raise unauthorized("admin or ingest token required")


AdminDep = Annotated[Caller, Depends(require_admin)]
IngestDep = Annotated[Caller, Depends(require_ingest)]
RaterDep = Annotated[Caller, Depends(require_rater)]
