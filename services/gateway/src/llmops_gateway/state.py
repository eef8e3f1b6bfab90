"""What one gateway process opens in its lifespan and closes at its end; views reach parts of it through ``deps``."""

from dataclasses import dataclass

import aiohttp
import redis.asyncio as redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llmops_gateway.feedback.client import RatingsForwarder
from llmops_gateway.files.store import ObjectStore
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.prompts.registry import PromptRegistry
from llmops_gateway.proxy.client import UpstreamClient
from llmops_gateway.quotas.limiter import QuotaLimiter
from llmops_gateway.requestlog.sinks import RequestLogSink
from llmops_gateway.routing.service import RouteTable
from llmops_gateway.settings import GatewaySettings
from llmops_gateway.spend.alerts import BudgetAlerts
from llmops_gateway.spend.prices import PriceTable
from llmops_gateway.spend.recorder import SpendRecorder


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
    files: ObjectStore  # file contents (batch inputs and outputs)
    settings: GatewaySettings
    prices: PriceTable
    spend: SpendRecorder  # spend summed in memory, written to SQL every few seconds
    alerts: BudgetAlerts
    prompts: PromptRegistry  # registered prompts, refreshed in the background

    async def aclose(self) -> None:
        """In the order that loses nothing: pending quota corrections and request records are written first."""
        await self.prompts.aclose()
        await self.authenticator.aclose()
        await self.limiter.aclose()
        await self.spend.aclose()
        await self.alerts.aclose()
        await self.request_log.aclose()
        await self.upstream.aclose()
        await self.http.close()
        await self.redis.aclose()
        await self.engine.dispose()
