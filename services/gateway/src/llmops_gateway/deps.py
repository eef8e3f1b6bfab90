"""FastAPI dependencies: each view asks for the parts it uses, never the whole gateway state.

All ``async def``: FastAPI runs a plain ``def`` dependency in a thread pool, which cost more than a whole request.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.auth import require_token
from llmops_gateway.feedback.client import RatingsForwarder
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.routing.service import RouteTable
from llmops_gateway.state import GatewayState


def _state(request: Request) -> GatewayState:
    return request.app.state.gateway


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with _state(request).sessions() as session:
        yield session


async def get_authenticator(request: Request) -> KeyAuthenticator:
    return _state(request).authenticator


async def get_routes(request: Request) -> RouteTable:
    return _state(request).routes


async def get_ratings(request: Request) -> RatingsForwarder | None:
    return _state(request).ratings


SessionDep = Annotated[AsyncSession, Depends(get_session)]
AuthenticatorDep = Annotated[KeyAuthenticator, Depends(get_authenticator)]
RoutesDep = Annotated[RouteTable, Depends(get_routes)]
RatingsDep = Annotated[RatingsForwarder | None, Depends(get_ratings)]


async def require_admin(request: Request) -> None:
    require_token(request, _state(request).admin_token, code="invalid_admin_token")
