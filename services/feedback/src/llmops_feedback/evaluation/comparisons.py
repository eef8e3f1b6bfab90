"""Offline comparisons in the SQL store: created by the API with their items resolved, run by a worker row by row
(progress visible), concluded with a verdict and the MLflow run they were logged to."""

import asyncio
import logging
import secrets

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_feedback.evaluation import compare, tracking
from llmops_feedback.evaluation.embeddings import Similarity
from llmops_feedback.evaluation.models import Comparison

logger = logging.getLogger(__name__)
_LOGGED = ("champion_route", "challenger_route", "rubric", "judge_route", "margin", "max_tokens")  # MLflow params
_CONCURRENCY = 2  # rows at once: each asks two routes and the judge; CPU-served models gain nothing from more


async def create(session: AsyncSession, *, spec: dict) -> Comparison:
    now = utcnow()
    row = Comparison(id=f"cmp_{secrets.token_hex(6)}", status="queued", spec=spec, total=len(spec["items"]), done=0,
                     wins=0, ties=0, losses=0, rows=[], tokens=0, created_at=now, updated_at=now)  # fmt: skip
    session.add(row)
    await session.flush()
    return row


async def get(session: AsyncSession, *, comparison_id: str) -> Comparison:
    found = await session.get(Comparison, comparison_id)
    if found is None:
        raise APIError(404, f"comparison {comparison_id!r} not found", code="comparison_not_found")
    return found


async def list_recent(session: AsyncSession, *, limit: int = 50) -> list[Comparison]:
    return list((await session.scalars(select(Comparison).order_by(Comparison.created_at.desc()).limit(limit))).all())


async def run(
    sessions: async_sessionmaker[AsyncSession],
    *,
    comparison_id: str,
    gateway: httpx.AsyncClient,
    mlflow: httpx.AsyncClient | None,
    attempts: int,
    structured: bool,
    similarity: Similarity | None = None,
) -> str:
    """Runs a queued comparison to its verdict; returns it. A comparison already past ``queued`` (a redelivered
    message) is left alone."""
    async with sessions() as session:
        found = await get(session, comparison_id=comparison_id)
        if found.status != "queued":
            return found.verdict or found.status
        found.status, found.updated_at = "running", utcnow()
        spec_data = dict(found.spec)
        await session.commit()
    spec = compare.Spec(
        champion_route=spec_data["champion_route"], challenger_route=spec_data["challenger_route"],
        rubric=spec_data["rubric"], judge_route=spec_data.get("judge_route"), margin=spec_data["margin"],
        max_tokens=spec_data["max_tokens"], attempts=attempts, structured=structured, similarity=similarity,
    )  # fmt: skip
    items = spec_data["items"]
    rows: list[dict | None] = [None] * len(items)
    gate = asyncio.Semaphore(_CONCURRENCY)
    lock = asyncio.Lock()

    async def one(i: int, item: dict) -> None:
        async with gate:
            rows[i] = await compare.row(gateway, spec, item)
        async with lock, sessions() as session:  # progress, one row at a time
            row = await get(session, comparison_id=comparison_id)
            row.done, row.updated_at = sum(r is not None for r in rows), utcnow()
            await session.commit()

    await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    done_rows = [r for r in rows if r is not None]
    outcome = compare.decide(done_rows, spec.margin)
    tokens = sum(r["tokens"] for r in done_rows)
    run_id, reason = None, outcome.reason
    if mlflow is not None:
        judged = max(1, outcome.wins + outcome.ties + outcome.losses)
        try:
            run_id = await tracking.log_comparison(
                mlflow, comparison_id=comparison_id, verdict=outcome.verdict, rows=done_rows,
                model=spec_data.get("model"), version=spec_data.get("model_version"),
                params={f: getattr(spec, f) for f in _LOGGED}
                | {"eval_set": spec_data.get("eval_set") or "replay", "rows": len(items)},
                metrics={"win_rate": outcome.wins / judged, "tie_rate": outcome.ties / judged,
                         "loss_rate": outcome.losses / judged, "judged": judged, "failed": outcome.failed,
                         "tokens": tokens, "blocked": float(outcome.verdict == "block")},
            )  # fmt: skip
        except tracking.TrackingError as exc:
            logger.warning("offline gate not logged to MLflow", extra={"comparison": comparison_id, "error": str(exc)})
            reason += f" (not logged to MLflow: {exc})"
    async with sessions() as session:
        row = await get(session, comparison_id=comparison_id)
        row.status, row.verdict, row.reason, row.mlflow_run_id = "done", outcome.verdict, reason, run_id
        row.wins, row.ties, row.losses, row.rows, row.tokens = (
            outcome.wins,
            outcome.ties,
            outcome.losses,
            done_rows,
            tokens,
        )
        row.done, row.updated_at = len(done_rows), utcnow()
        await session.commit()
    return outcome.verdict


async def fail(sessions: async_sessionmaker[AsyncSession], *, comparison_id: str, reason: str) -> None:
    """A comparison the worker could not finish: failed with the reason, never left running."""
    async with sessions() as session:
        row = await get(session, comparison_id=comparison_id)
        row.status, row.reason, row.updated_at = "failed", reason[:2000], utcnow()
        await session.commit()
