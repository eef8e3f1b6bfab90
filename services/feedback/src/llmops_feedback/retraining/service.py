"""Retraining from feedback: per route, when at least ``min_examples`` new training examples (thumbs-up answers and
corrections) arrived since the last job, train an adapter on the route's feedback, register it as
``<model_name>@challenger``, add it to the route as a variant without traffic and, once the adapter is served and
has passed the policy's offline gate if it has one (``gate``), open an experiment at the canary share.

Guards: one open experiment per route (nothing starts while one is open), a cooldown between jobs, a dataset that
must differ (sha256 of its lines) from the last job's, and a failed job counted: after ``max_failures`` in a row the
policy stops until an admin updates it. Each pass moves a policy at most one step; ``status`` says where it stands.
"""

import hashlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common import tracing
from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_feedback.datasets.service import Filters, sft_lines
from llmops_feedback.experiments import service as experiments
from llmops_feedback.experiments.models import Experiment
from llmops_feedback.experiments.schemas import ExperimentCreate
from llmops_feedback.platform import GatewayRoutes, PlatformError, Trainer, unavailable
from llmops_feedback.retraining import gate
from llmops_feedback.retraining.models import RetrainingPolicy
from llmops_feedback.retraining.schemas import RetrainingIn
from llmops_feedback.state import FeedbackState

FINISHED = ("succeeded", "failed", "cancelled")
CHALLENGER_ALIAS = "challenger"


async def put(session: AsyncSession, *, route: str, data: RetrainingIn, routes: GatewayRoutes) -> RetrainingPolicy:
    """Creates or replaces the route's policy; replacing it is how an admin lets a stopped policy try again."""
    try:
        spec = await routes.get(route)
    except PlatformError as exc:
        raise unavailable(exc) from None
    if spec is None:
        raise APIError(404, f"route {route!r} not found", code="route_not_found")
    if data.champion not in {v["name"] for v in spec["variants"]}:
        raise APIError(422, f"route {route!r} has no variant {data.champion!r}", param="champion")
    if data.champion == data.challenger:
        raise APIError(422, "champion and challenger must be different variants", param="challenger")
    policy = await session.get(RetrainingPolicy, route) or RetrainingPolicy(route=route, dataset_examples=0)
    for field, value in data.model_dump().items():
        setattr(policy, field, value)
    policy.failures, policy.updated_at = 0, utcnow()
    policy.status = policy.status or "waiting for feedback"
    session.add(policy)
    await session.commit()
    return policy


async def get(session: AsyncSession, *, route: str) -> RetrainingPolicy:
    policy = await session.get(RetrainingPolicy, route)
    if policy is None:
        raise APIError(404, f"no retraining policy for route {route!r}", code="retraining_not_found")
    return policy


async def list_(session: AsyncSession) -> list[RetrainingPolicy]:
    return list((await session.scalars(select(RetrainingPolicy).order_by(RetrainingPolicy.route))).all())


async def delete(session: AsyncSession, *, route: str) -> None:
    await session.delete(await get(session, route=route))
    await session.commit()


async def dataset(session: AsyncSession, *, route: str, until=None) -> tuple[int, str]:
    """How many SFT lines the route's feedback makes now, and their sha256."""
    digest, count = hashlib.sha256(), 0
    async for line in sft_lines(session, Filters(route=route, until=until)):
        digest.update(line)
        count += 1
    return count, digest.hexdigest()


async def run_pass(session: AsyncSession, *, state: FeedbackState) -> list[tuple[str, str]]:
    """One step for every enabled policy: ``(route, what happened)`` for the steps that changed something."""
    events = []
    policies = (await session.scalars(select(RetrainingPolicy).where(RetrainingPolicy.enabled.is_(True)))).all()
    for policy in policies:
        before = (policy.job_id, policy.job_state, policy.experiment_id, policy.gate_comparison_id, policy.gate_verdict)
        try:
            await _step(session, policy, state=state)
        except (PlatformError, APIError) as exc:
            policy.status = f"waiting: {exc}"[:1000]
        policy.updated_at = utcnow()
        await session.commit()
        if (policy.job_id, policy.job_state, policy.experiment_id, policy.gate_comparison_id,
                policy.gate_verdict) != before:  # fmt: skip
            events.append((policy.route, policy.status or ""))
    return events


async def _step(session, policy: RetrainingPolicy, *, state: FeedbackState) -> None:
    if policy.job_id and policy.job_state not in FINISHED:
        job = await state.trainer.get(policy.job_id)
        policy.job_state = job["state"]
        policy.served_model, policy.registered_version = job.get("served_model"), job.get("registered_version")
        if job["state"] in ("failed", "cancelled"):
            policy.failures += 1
            policy.status = f"job {policy.job_id} {job['state']}: {job.get('error') or '-'}"[:1000]
            return
        if job["state"] != "succeeded":
            policy.status = f"job {policy.job_id} {job['state']}"
            return
    if policy.job_id and policy.job_state == "succeeded" and policy.experiment_id is None and not gate.closed(policy):
        await _canary(session, policy, state=state)
        return
    await _maybe_train(session, policy, trainer=state.trainer)


async def _maybe_train(session: AsyncSession, policy: RetrainingPolicy, *, trainer: Trainer) -> None:
    now = utcnow()
    open_experiment = await session.scalar(select(Experiment.id).where(Experiment.open_route == policy.route))
    if open_experiment:
        policy.status = f"waiting: experiment {open_experiment} is open on the route"
        return
    if policy.failures >= policy.max_failures:
        policy.status = f"stopped after {policy.failures} failed jobs in a row; update the policy to try again"
        return
    if policy.started_at and (now - policy.started_at).total_seconds() < policy.cooldown_s:
        policy.status = f"cooling down until {policy.started_at.timestamp() + policy.cooldown_s:.0f} (epoch s)"
        return
    count, digest = await dataset(session, route=policy.route, until=now)
    # The hash first: an unchanged dataset also has no new examples, so checked after the count it could never be
    # the reason given (after a failed job, "0 new examples" hid that the same data would simply be trained again).
    if digest == policy.dataset_hash:
        policy.status = "waiting: the dataset is the last job's"
        return
    new = count - policy.dataset_examples
    if new < policy.min_examples:
        policy.status = f"waiting: {max(new, 0)} new training examples of {policy.min_examples}"
        return
    # The job's trace starts here: the trainer's request span and its worker's training span join it.
    with tracing.span("retraining submit", attributes={"llmops.route": policy.route, "llmops.examples": count}):
        job = await trainer.submit(
            {
                **policy.job,
                "dataset": {"feedback": {"route": policy.route, "until": now.isoformat()}},
                "registry": {"model_name": policy.model_name, "alias": CHALLENGER_ALIAS},
            }
        )
    policy.job_id, policy.job_state, policy.experiment_id = job["id"], job["state"], None
    policy.served_model = policy.registered_version = None
    policy.dataset_hash, policy.dataset_examples, policy.started_at = digest, count, now
    policy.status = f"job {job['id']} started on {count} examples ({new} new)"


async def _canary(session, policy: RetrainingPolicy, *, state: FeedbackState) -> None:
    """The adapter joins the route as a variant without traffic, and once it is served (and has passed the offline
    gate, when the policy has one) an experiment opens."""
    routes = state.routes
    if policy.served_model is None:  # a job that succeeded before its adapter was kept on the policy
        job = await state.trainer.get(policy.job_id)
        policy.served_model, policy.registered_version = job.get("served_model"), job.get("registered_version")
    served, version = policy.served_model, policy.registered_version
    spec = await routes.get(policy.route)
    if spec is None:
        raise PlatformError(f"route {policy.route!r} no longer exists")
    variants = {v["name"]: v for v in spec["variants"]}
    if policy.champion not in variants:
        raise PlatformError(f"route {policy.route!r} has no variant {policy.champion!r} any more")
    champion = variants[policy.champion]
    upstream = policy.upstream or champion["upstream"]
    challenger = {"name": policy.challenger, "upstream": upstream, "model": served, "weight": 0}
    # The adapter is served beside the champion's model, by the inference service: the key the gateway sends it (the
    # serving token) goes with it, also to ``policy.upstream`` (another replica set of that service).
    if champion.get("api_key_env"):
        challenger["api_key_env"] = champion["api_key_env"]
    if variants.get(policy.challenger, {}) | {"weight": 0} != challenger:
        spec["variants"] = [v for v in spec["variants"] if v["name"] != policy.challenger] + [challenger]
        await routes.put(policy.route, spec)
    if not await routes.serves(upstream, served, api_key_env=challenger.get("api_key_env")):
        policy.status = f"job {policy.job_id} registered {served} version {version}; waiting for it to be served"
        return
    if not await gate.passed(session, policy, spec=spec, state=state):
        return
    data = ExperimentCreate(
        route=policy.route, champion=policy.champion, challenger=policy.challenger, policy=policy.experiment
    )
    experiment = await experiments.create(
        session, data=data, actor="retraining", routes=routes, registry=state.registry
    )
    policy.experiment_id, policy.failures = experiment.id, 0
    passed = f"; offline gate {policy.gate_comparison_id} passed" if policy.gate else ""
    policy.status = (
        f"job {policy.job_id} registered {served} version {version}{passed}; experiment {experiment.id} opened"
    )
