"""FastAPI dependencies shared by the gateway's views."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.auth import require_token
from llmops_gateway.state import GatewayState


async def get_gateway(request: Request) -> GatewayState:
    return request.app.state.gateway


GatewayDep = Annotated[GatewayState, Depends(get_gateway)]


async def get_session(gw: GatewayDep) -> AsyncIterator[AsyncSession]:
    async with gw.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def require_admin(request: Request, gw: GatewayDep) -> None:
    require_token(request, gw.admin_token, code="invalid_admin_token")
