"""Dependencies: the session, and who is calling (admin, or the gateway on behalf of a key)."""

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common import sql
from llmops_common.auth import bearer_token, require_token, token_matches, unauthorized
from llmops_common.contracts.ratings import KEY_ID_HEADER, RATED_AT_HEADER
from llmops_common.contracts.requestlog import MAX_EPOCH_S
from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_feedback.state import FeedbackState


async def get_state(request: Request) -> FeedbackState:
    return request.app.state.feedback


StateDep = Annotated[FeedbackState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with sql.request_session(state.sessions) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True)
class Caller:
    admin: bool
    key_id: str | None  # set when the gateway acts for a client key: that key's requests only

    @property
    def name(self) -> str:
        """Who a rating is recorded as given by: the key, or ``admin``."""
        return "admin" if self.admin else self.key_id


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
        if len(key_id) > 64:  # a pending rating stores it (as the request log does a record's key id)
            raise APIError(400, f"{KEY_ID_HEADER} longer than 64 characters", code="invalid_key_id")
        return Caller(admin=False, key_id=key_id)
    raise unauthorized("admin or ingest token required")


async def rated_at(request: Request) -> datetime:
    """When the rating was given: the gateway's time (it may deliver it much later, from its spool), else now."""
    given = request.headers.get(RATED_AT_HEADER)
    if given is None:
        return utcnow()
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_EPOCH_S:  # also NaN
        raise APIError(400, f"{RATED_AT_HEADER} must be epoch seconds", code="invalid_rated_at")
    return datetime.fromtimestamp(seconds, UTC)


AdminDep = Annotated[Caller, Depends(require_admin)]
IngestDep = Annotated[Caller, Depends(require_ingest)]
RaterDep = Annotated[Caller, Depends(require_rater)]
RatedAtDep = Annotated[datetime, Depends(rated_at)]
