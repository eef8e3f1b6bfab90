from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llmops_feedback.metrics import FeedbackMetrics
from llmops_feedback.platform import GatewayRoutes, Registry, Trainer
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
    routes: GatewayRoutes  # what the closed loop acts on
    registry: Registry
    trainer: Trainer
    celery: Any = None  # the evaluation queue's Celery app (sends only); None without FEEDBACK_EVAL_REDIS_URL
