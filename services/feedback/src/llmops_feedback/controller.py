"""The closed loop's controller: on a schedule, applies what is pending and decides every running experiment, then
moves every retraining policy one step.

Every feedback replica runs this loop; only the holder of the ``experiments`` lease (a row in the SQL store,
renewed each pass, taken over once it has expired) acts, so exactly one controller acts at a time. Decisions
are idempotent besides: each is recorded against the experiment's revision, so even two holders could not both
record one.
"""

import asyncio
import logging
import os
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.sql import dialect_insert, utcnow
from llmops_feedback.experiments import service
from llmops_feedback.experiments.models import Experiment, ExperimentDecision, Lease
from llmops_feedback.experiments.policy import Action
from llmops_feedback.retraining import service as retraining
from llmops_feedback.state import FeedbackState

logger = logging.getLogger(__name__)

LEASE = "experiments"
HOLDER = f"{os.uname().nodename[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


async def take_lease(session: AsyncSession, *, holder: str, ttl_s: float) -> bool:
    """True when ``holder`` holds the lease for the next ``ttl_s`` seconds."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl_s)
    renewed = await session.execute(
        update(Lease)
        .where(Lease.name == LEASE, (Lease.holder == holder) | (Lease.expires_at < now))
        .values(holder=holder, expires_at=expires)
    )
    if renewed.rowcount == 0:
        row = {"name": LEASE, "holder": holder, "expires_at": expires}
        await session.execute(
            dialect_insert(session)(Lease).values(row).on_conflict_do_nothing(index_elements=["name"])
        )
    await session.commit()
    return await session.scalar(select(Lease.holder).where(Lease.name == LEASE)) == holder


async def run_once(state: FeedbackState, *, holder: str = HOLDER) -> list[tuple[str, str]]:
    """One pass over experiments, then retraining policies: ``(experiment id, action)`` for each decision taken and
    ``(route, status)`` for each retraining step (none when another replica holds the lease)."""
    taken: list[tuple[str, str]] = []
    seen: dict[str, tuple] = {}
    async with state.sessions() as session:
        if not await take_lease(session, holder=holder, ttl_s=3 * state.settings.experiment_interval_s):
            return taken
        # Concluded experiments too while a decision of theirs is unapplied (a promotion waiting for its champion
        # name to be served, a gateway that was down): applying is retried until it holds.
        unapplied = select(ExperimentDecision.id).where(
            ExperimentDecision.experiment_id == Experiment.id, ExperimentDecision.applied.is_(False)
        )
        query = select(Experiment).where(Experiment.status.in_(("running", "halted")) | unapplied.exists())
        for experiment in (await session.scalars(query)).all():
            await service.apply_pending(session, experiment=experiment, routes=state.routes, registry=state.registry)
            if experiment.status != "running":
                continue
            champion, challenger, decision = await service.evaluate(session, experiment, state.registry)
            arms = {"champion": champion.stats, "challenger": challenger.stats}
            seen[experiment.id] = (experiment.route, experiment.share, arms, decision.evidence)
            if decision.action == Action.WAIT:
                continue
            recorded = await service.act(
                session,
                experiment=experiment,
                action=decision.action.value,
                reason=decision.reason,
                evidence=decision.evidence,
                actor="controller",
                routes=state.routes,
                registry=state.registry,
            )
            if recorded is not None:
                state.metrics.experiment_decisions.labels(experiment.route, recorded.action).inc()
                logger.info(
                    "experiment decision",
                    extra={"experiment": experiment.id, "action": recorded.action, "reason": recorded.reason},
                )
                taken.append((experiment.id, recorded.action))
        state.metrics.experiments.update(seen)
        taken += await retraining.run_pass(session, state=state)
    return taken


async def run(state: FeedbackState) -> None:
    """Forever, every ``FEEDBACK_EXPERIMENT_INTERVAL_S``; a failed pass is logged and the next one tries again."""
    while True:
        try:
            await run_once(state)
        except Exception:
            logger.exception("experiment controller pass failed")
        await asyncio.sleep(state.settings.experiment_interval_s)
