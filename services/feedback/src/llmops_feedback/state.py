from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llmops_feedback.experiments.platform import GatewayRoutes, Registry
from llmops_feedback.metrics import FeedbackMetrics
from llmops_feedback.settings import FeedbackSettings


@dataclass
class FeedbackState:
    """Everything one feedback process holds, built in the lifespan; ``request.app.state.feedback``."""

    settings: FeedbackSettings
    admin_token: str
    ingest_token: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metrics: FeedbackMetrics
    routes: GatewayRoutes  # what experiments act on
    registry: Registry
