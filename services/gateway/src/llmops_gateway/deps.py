"""FastAPI dependencies: each view asks for the parts it uses, never the whole gateway state.

All ``async def``: FastAPI runs a plain ``def`` dependency in a thread pool, which cost more than a whole request.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common import sql
from llmops_common.errors import APIError
from llmops_gateway.admin.auth import Identity, identify
from llmops_gateway.feedback.client import RatingsForwarder
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.prompts.registry import PromptRegistry
from llmops_gateway.routing.service import RouteTable
from llmops_gateway.settings import GatewaySettings
from llmops_gateway.spend.prices import PriceTable
from llmops_gateway.state import GatewayState


def _state(request: Request) -> GatewayState:
    return request.app.state.gateway


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with sql.request_session(_state(request).sessions) as session:
        yield session


async def get_authenticator(request: Request) -> KeyAuthenticator:
    return _state(request).authenticator


async def get_routes(request: Request) -> RouteTable:
    return _state(request).routes


async def get_files(request: Request):
    return _state(request).files


async def get_prices(request: Request) -> PriceTable:
    return _state(request).prices


async def get_prompts(request: Request) -> PromptRegistry:
    return _state(request).prompts


async def get_settings(request: Request) -> GatewaySettings:
    return _state(request).settings


async def get_ratings(request: Request) -> RatingsForwarder | None:
    return _state(request).ratings


SessionDep = Annotated[AsyncSession, Depends(get_session)]
AuthenticatorDep = Annotated[KeyAuthenticator, Depends(get_authenticator)]
RoutesDep = Annotated[RouteTable, Depends(get_routes)]
PricesDep = Annotated[PriceTable, Depends(get_prices)]
PromptsDep = Annotated[PromptRegistry, Depends(get_prompts)]
SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
RatingsDep = Annotated[RatingsForwarder | None, Depends(get_ratings)]


async def get_identity(request: Request) -> Identity:
    """Whoever calls the admin API (401 for nobody); views check what its role may do. Repeated bad admin tokens
    are refused for a while, as bad API keys are (``keys.lockout``; the admin API is low volume: one Redis read
    per call is affordable)."""
    state = _state(request)
    authenticator = state.authenticator
    lockout = authenticator.lockout
    address = lockout.address(request.scope) if lockout is not None else None
    if lockout is not None:
        await lockout.check("admin", address)
    try:
        return await identify(
            request,
            admin_token=state.admin_token,
            key_secret=authenticator.key_secret,
            previous_key_secrets=authenticator.previous_key_secrets,
            sessions=state.sessions,
        )
    except APIError as exc:
        if lockout is not None and exc.status == 401:
            await lockout.failed("admin", address)
        raise


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def require_admin(identity: IdentityDep) -> Identity:
    """The ``admin`` role (the platform admin token is one): for endpoints without finer rules."""
    identity.require_admin()
    return identity
