"""Scoring one logged request with one rubric: deterministic scorers at once, judges through the gateway. Runs on
the evaluation workers; the result (or the reason there is none) becomes the request's row in ``eval_scores``."""

import asyncio
import logging

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_feedback.evaluation import service
from llmops_feedback.evaluation.embeddings import Similarity
from llmops_feedback.evaluation.items import item_of
from llmops_feedback.evaluation.judge import JudgeError, Judgement, judge
from llmops_feedback.evaluation.rubrics import Rubric
from llmops_feedback.settings import FeedbackSettings

logger = logging.getLogger(__name__)


def _skipped(reason: str) -> Judgement:
    return Judgement(None, None, reason, 0, 0, 0, ok=False)


async def score_request(
    session: AsyncSession,
    *,
    request_id: str,
    rubric: Rubric,
    judge_route: str | None,
    gateway: httpx.AsyncClient | None,
    settings: FeedbackSettings,
    origin: str = "online",
    final_attempt: bool = True,
    similarity: Similarity | None = None,
) -> tuple[str, int]:
    """Scores and stores; returns the row's status (``ok``, ``failed``, ``skipped``) and the tokens spent. A judge route that cannot be
    asked raises ``JudgeError`` while retries remain (``final_attempt`` False) and is stored as failed after."""
    scorer = service.judge_scorer(judge_route) if rubric.kind == "judge" else service.DETERMINISTIC
    loaded = await service.load(session, request_id=request_id)
    if loaded is None:
        return "skipped", 0  # deleted since it was queued
    item = item_of(*loaded)
    reason = "no stored text or no answer" if item is None else service.applicable(rubric, item)
    status = "skipped"
    if reason is not None:
        judgement = _skipped(reason)
    elif rubric.kind == "deterministic":
        judgement = await asyncio.to_thread(service.score_deterministic, rubric, item, similarity=similarity)
        status = "ok" if judgement.ok else "failed"
    elif gateway is None or judge_route is None:
        judgement = _skipped("no judge configured (FEEDBACK_GATEWAY_URL, FEEDBACK_EVAL_JUDGE_KEY and a judge route)")
        status = "failed"
    else:
        try:
            judgement = await judge(
                gateway, route=judge_route, rubric=rubric, item=item, attempts=settings.eval_judge_attempts,
                max_tokens=settings.eval_judge_max_tokens, structured=settings.eval_judge_structured,
            )  # fmt: skip
            status = "ok" if judgement.ok else "failed"
        except JudgeError as exc:
            if exc.transient and not final_attempt:
                raise
            judgement, status = _skipped(str(exc)), "failed"
    await service.save(session, request_id=request_id, rubric=rubric, scorer=scorer, origin=origin,
                       judgement=judgement, status=status)  # fmt: skip
    await session.commit()
    return status, judgement.prompt_tokens + judgement.completion_tokens
