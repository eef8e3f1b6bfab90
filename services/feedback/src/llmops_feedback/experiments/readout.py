"""An experiment's arms, counted from the request log and its ratings.

An exposure is a logged request of the arm's variant on the experiment's route since it started. A registry arm
counts only the version it was pinned to at creation: a readout never mixes two versions under one name.
Exposures of another version are counted apart (``other_versions``: the inference service catching up with an
alias move; a move after creation halts the experiment, see ``service.evaluate``).
"""

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_feedback.experiments.models import Experiment, ExperimentDecision
from llmops_feedback.experiments.policy import ArmStats
from llmops_feedback.experiments.stats import blended_share
from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord


@dataclass(frozen=True)
class ArmCounts:
    stats: ArmStats  # since the experiment started
    other_versions: int  # exposures of the arm's variant served by another registry version


async def count_arm(
    session: AsyncSession, *, route: str, variant: str, version: str | None, since: datetime
) -> ArmCounts:
    of_arm = [RequestRecord.route == route, RequestRecord.variant == variant, RequestRecord.started_at >= since]
    pinned = of_arm + ([RequestRecord.model_version == version] if version else [])
    rated = and_(Rating.request_id == RequestRecord.request_id, Rating.current.is_(True))
    row = (
        await session.execute(
            select(
                func.count(RequestRecord.request_id),
                func.count(case((RequestRecord.status >= 500, 1))),
                func.count(Rating.id),
                func.count(case((Rating.rating == "up", 1))),
            )
            .select_from(RequestRecord)
            .outerjoin(Rating, rated)
            .where(*pinned)
        )
    ).one()
    exposures, errors, ratings, thumbs_up = (int(v or 0) for v in row)
    other = 0
    if version:
        moved = or_(RequestRecord.model_version != version, RequestRecord.model_version.is_(None))
        other = await session.scalar(select(func.count()).select_from(RequestRecord).where(*of_arm, moved)) or 0
    stats = ArmStats(
        exposures=exposures,
        ratings=ratings,
        thumbs_up=thumbs_up,
        errors=errors,
        ttft_p95_ms=await _ttft_p95(session, pinned),
        judge_score=None,  # judges (the evaluation feature) fill this in where they run
    )
    return ArmCounts(stats=stats, other_versions=int(other))


async def _ttft_p95(session: AsyncSession, where: list) -> float | None:
    """The 95th percentile of time to first token (streamed answers), by rank: portable across SQL dialects."""
    where = [*where, RequestRecord.ttft_ms.is_not(None)]
    n = await session.scalar(select(func.count()).select_from(RequestRecord).where(*where)) or 0
    if n == 0:
        return None
    rank = math.ceil(0.95 * n) - 1  # nearest-rank method, 0-based
    query = select(RequestRecord.ttft_ms).where(*where).order_by(RequestRecord.ttft_ms).offset(rank).limit(1)
    return await session.scalar(query)


async def count_arms(session: AsyncSession, experiment: Experiment) -> tuple[ArmCounts, ArmCounts]:
    """(champion, challenger)."""
    common = {"route": experiment.route, "since": experiment.created_at}
    champion = await count_arm(session, variant=experiment.champion, version=experiment.champion_version, **common)
    challenger = await count_arm(
        session, variant=experiment.challenger, version=experiment.challenger_version, **common
    )
    return champion, challenger


async def planned_share(session: AsyncSession, experiment: Experiment) -> float:
    """The challenger's expected share of all the exposures counted: each step's share weighted by the exposures
    (both arms) that arrived while it held. The sample-ratio check compares the real split with this."""
    query = (
        select(ExperimentDecision.created_at, ExperimentDecision.share)
        .where(ExperimentDecision.experiment_id == experiment.id, ExperimentDecision.action.in_(("start", "ramp")))
        .order_by(ExperimentDecision.id)
    )
    steps = (await session.execute(query)).all()
    arms = [
        (experiment.champion, experiment.champion_version),
        (experiment.challenger, experiment.challenger_version),
    ]
    of_arms = or_(
        *(
            and_(RequestRecord.variant == variant, *([RequestRecord.model_version == version] if version else []))
            for variant, version in arms
        )
    )
    shares, exposures = [], []
    for (start, share), nxt in zip(steps, [*steps[1:], None], strict=True):
        window = [RequestRecord.route == experiment.route, of_arms, RequestRecord.started_at >= start]
        if nxt is not None:
            window.append(RequestRecord.started_at < nxt[0])
        shares.append(share)
        exposures.append(await session.scalar(select(func.count()).select_from(RequestRecord).where(*window)) or 0)
    return blended_share(shares, exposures) if shares else experiment.share
