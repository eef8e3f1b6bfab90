"""FastAPI dependencies shared by the gateway's views."""

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_gateway.state import GatewayState


async def get_gateway(request: Request) -> GatewayState:
    return request.app.state.gateway


GatewayDep = Annotated[GatewayState, Depends(get_gateway)]


async def get_session(gw: GatewayDep) -> AsyncIterator[AsyncSession]:
    async with gw.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def require_admin(request: Request, gw: GatewayDep) -> None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), gw.admin_token.encode()):
        raise APIError(401, "admin token required", code="invalid_admin_token", headers={"WWW-Authenticate": "Bearer"})
