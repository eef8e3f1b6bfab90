"""Dependencies: the state, a session, and the admin check (every job route needs the admin token)."""

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_trainer.state import TrainerState


async def get_state(request: Request) -> TrainerState:
    return request.app.state.trainer


StateDep = Annotated[TrainerState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def require_admin(request: Request, state: StateDep) -> None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if not token or not hmac.compare_digest(token.encode(), state.admin_token.encode()):
        raise APIError(401, "admin token required", code="invalid_token", headers={"WWW-Authenticate": "Bearer"})


AdminDep = Annotated[None, Depends(require_admin)]
