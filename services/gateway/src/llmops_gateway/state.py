"""What one gateway process opens in its lifespan and closes at its end; views reach parts of it through ``deps``."""

from dataclasses import dataclass

import aiohttp
import redis.asyncio as redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llmops_gateway.feedback.client import RatingsForwarder
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.proxy.client import UpstreamClient
from llmops_gateway.quotas.limiter import QuotaLimiter
from llmops_gateway.requestlog.sinks import RequestLogSink
from llmops_gateway.routing.service import RouteTable


@dataclass
class GatewayState:
    admin_token: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: redis.Redis  # quota counters, and the readiness probe
    http: aiohttp.ClientSession  # retriever and feedback calls
    upstream: UpstreamClient  # model servers: the hot path
    authenticator: KeyAuthenticator
    routes: RouteTable
    limiter: QuotaLimiter
    request_log: RequestLogSink
    ratings: RatingsForwarder | None  # None: no feedback service configured

    async def aclose(self) -> None:
        """In the order that loses nothing: pending quota corrections and request records are written first."""
        await self.authenticator.aclose()
        await self.limiter.aclose()
        await self.request_log.aclose()
        await self.upstream.aclose()
        await self.http.close()
        await self.redis.aclose()
        await self.engine.dispose()
