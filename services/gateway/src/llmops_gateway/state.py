"""Everything one gateway process holds, built in the lifespan and reached through ``request.app.state.gateway``."""

from dataclasses import dataclass

import aiohttp
import redis.asyncio as redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.proxy.client import UpstreamClient
from llmops_gateway.quotas.limiter import QuotaLimiter
from llmops_gateway.rag.client import RetrieverClient
from llmops_gateway.requestlog.sinks import RequestLogSink
from llmops_gateway.routing.breaker import CircuitBreakers
from llmops_gateway.routing.service import RouteTable
from llmops_gateway.settings import GatewaySettings


@dataclass
class GatewayState:
    settings: GatewaySettings
    admin_token: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: redis.Redis
    http: aiohttp.ClientSession  # retriever and feedback calls
    upstream: UpstreamClient  # model servers: the hot path
    authenticator: KeyAuthenticator
    routes: RouteTable
    limiter: QuotaLimiter
    breakers: CircuitBreakers
    metrics: GatewayMetrics
    request_log: RequestLogSink
    retriever: RetrieverClient | None = None  # None: no retriever configured, RAG requests are refused
