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

from llmops_feedback.evaluation import rubrics
from llmops_feedback.evaluation import service as evaluation
from llmops_feedback.evaluation.rubrics import Rubric
from llmops_feedback.experiments.models import Experiment, ExperimentDecision
from llmops_feedback.experiments.policy import ArmStats, ExperimentPolicy
from llmops_feedback.experiments.stats import blended_share
from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord


@dataclass(frozen=True)
class ArmCounts:
    stats: ArmStats  # since the experiment started
    other_versions: int  # exposures of the arm's variant served by another registry version
    prompts: dict[str, int]  # exposures by the prompt they were sent with ("name/version"): an arm may be one


async def count_arm(
    session: AsyncSession,
    *,
    route: str,
    variant: str,
    version: str | None,
    since: datetime,
    judge_rubric: Rubric | None = None,
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
        # The scores the evaluation workers gave the arm's requests (online sample): the judge guardrail's mean, or
        # the primary metric's outcomes.
        judge=None
        if judge_rubric is None
        else await evaluation.arm_moments(
            session, rubric=judge_rubric, route=route, variant=variant, version=version, since=since
        ),
    )
    return ArmCounts(stats=stats, other_versions=int(other), prompts=await _prompts(session, pinned))


async def _prompts(session: AsyncSession, where: list) -> dict[str, int]:
    """An arm's exposures by prompt version: two prompt versions on one model are arms like any other, and an alias
    that moved under an arm shows here."""
    rows = await session.execute(
        select(RequestRecord.prompt_name, RequestRecord.prompt_version, func.count())
        .where(*where, RequestRecord.prompt_name.is_not(None))
        .group_by(RequestRecord.prompt_name, RequestRecord.prompt_version)
    )
    return {f"{name}/{version}" if version else name: int(n) for name, version, n in rows.all()}


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
    """(champion, challenger), each with its mean score by the policy's judge rubric."""
    name = ExperimentPolicy.from_dict(experiment.policy).judge_rubric
    judge_rubric = rubrics.get(name) if name else None
    common = {"route": experiment.route, "since": experiment.created_at, "judge_rubric": judge_rubric}
    champion = await count_arm(session, variant=experiment.champion, version=experiment.champion_version, **common)
    challenger = await count_arm(
        session, variant=experiment.challenger, version=experiment.challenger_version, **common
    )
    return champion, challenger


@dataclass(frozen=True)
class Assignments:
    """How the experiment's units were split, for the sample-ratio check. A unit is a user within a step (sticky
    routing keeps a user on one arm while the split holds, and a ramp moves some users over), or a request that
    carried no user id (split at random, request by request)."""

    champion: int
    challenger: int
    planned_share: float  # each step's share weighted by the units that arrived while it held


async def assignments(session: AsyncSession, experiment: Experiment) -> Assignments:
    query = (
        select(ExperimentDecision.created_at, ExperimentDecision.share)
        .where(ExperimentDecision.experiment_id == experiment.id, ExperimentDecision.action.in_(("start", "ramp")))
        .order_by(ExperimentDecision.id)
    )
    steps = (await session.execute(query)).all() or [(experiment.created_at, experiment.share)]
    shares, units = [], {experiment.champion: 0, experiment.challenger: 0}
    per_step = []
    for (start, share), nxt in zip(steps, [*steps[1:], None], strict=True):
        window = [RequestRecord.route == experiment.route, RequestRecord.started_at >= start]
        if nxt is not None:
            window.append(RequestRecord.started_at < nxt[0])
        counted = 0
        for variant, version in (
            (experiment.champion, experiment.champion_version),
            (experiment.challenger, experiment.challenger_version),
        ):
            of_arm = [*window, RequestRecord.variant == variant]
            if version:
                of_arm.append(RequestRecord.model_version == version)
            users = func.count(func.distinct(RequestRecord.user_hash))
            anonymous = func.count(case((RequestRecord.user_hash.is_(None), 1)))
            row = (await session.execute(select(users, anonymous).where(*of_arm))).one()
            n = int(row[0] or 0) + int(row[1] or 0)
            units[variant] += n
            counted += n
        shares.append(share)
        per_step.append(counted)
    return Assignments(units[experiment.champion], units[experiment.challenger], blended_share(shares, per_step))
