"""Dependencies: the state, a session, and the admin check (every job route needs the admin token)."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common import sql
from llmops_common.auth import require_token
from llmops_trainer.state import TrainerState


async def get_state(request: Request) -> TrainerState:
    return request.app.state.trainer


StateDep = Annotated[TrainerState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with sql.request_session(state.sessions) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def require_admin(request: Request, state: StateDep) -> None:
    require_token(request, state.admin_token)


AdminDep = Annotated[None, Depends(require_admin)]
