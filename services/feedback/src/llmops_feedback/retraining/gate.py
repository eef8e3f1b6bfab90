"""The offline gate between a served challenger adapter and its canary (a policy's ``gate`` block).

Once the adapter is served, the champion and the challenger each get a gate route of their own (a copy of the
route's spec with only that variant, so templates and retrieval are the route's; the route itself keeps its split
untouched), the gate's comparison is queued for an evaluation worker (the path of ``llmops eval compare``), and
every controller pass looks at it until it ends. ``pass``: the experiment opens. ``block`` (or a gate that could
not run): the adapter gets no live traffic, the verdict and the MLflow run stay on the policy, and the next cycle
starts from new feedback as usual. The comparison tags the registered version with its verdict, so an experiment
opened by hand on a blocked version is refused too."""

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from llmops_feedback.evaluation import comparisons, gate
from llmops_feedback.evaluation.gate import ComparisonIn
from llmops_feedback.evaluation.schemas import FromFeedback
from llmops_feedback.platform import GatewayRoutes, PlatformError
from llmops_feedback.retraining.models import RetrainingPolicy
from llmops_feedback.retraining.schemas import GateIn
from llmops_feedback.state import FeedbackState

logger = logging.getLogger(__name__)

CLOSED = ("block", "failed")  # verdicts that keep the adapter off live traffic


def route_name(route: str, arm: str) -> str:
    """The gate route of one arm: the route's name with a suffix (kept under the gateway's 128 characters)."""
    suffix = f".gate-{arm}"
    return route[: 128 - len(suffix)] + suffix


def closed(policy: RetrainingPolicy) -> bool:
    """True when the last job's adapter was kept off live traffic by its gate."""
    return policy.gate_job_id == policy.job_id and policy.gate_verdict in CLOSED


async def passed(session: AsyncSession, policy: RetrainingPolicy, *, spec: dict, state: FeedbackState) -> bool:
    """True when the challenger may get live traffic now: the policy has no gate, or the gate passed for this job's
    adapter. Otherwise starts the gate (first call for a job) or records how far it is; ``spec``: the route's."""
    if policy.gate is None:
        return True
    if policy.gate_job_id != policy.job_id:
        await _start(session, policy, spec=spec, state=state)
        return False
    found = await comparisons.get(session, comparison_id=policy.gate_comparison_id)
    label = f"offline gate {found.id} on {policy.served_model} version {policy.registered_version}"
    if found.status in ("queued", "running"):
        policy.status = f"{label}: {found.status} ({found.done}/{found.total} rows)"
        return False
    await _remove_gate_routes(state.routes, policy.route)  # the comparison is over: they served only it
    if found.status == "failed":
        policy.gate_verdict, policy.gate_reason = "failed", found.reason
        policy.status = f"{label} could not run, so no canary: {found.reason}"[:1000]
        return False
    policy.gate_verdict, policy.gate_run_id, policy.gate_reason = found.verdict, found.mlflow_run_id, found.reason
    if found.verdict != "pass":
        policy.status = f"{label} blocked the canary (MLflow run {found.mlflow_run_id or '-'}): {found.reason}"[:1000]
        return False
    return True


async def _start(session: AsyncSession, policy: RetrainingPolicy, *, spec: dict, state: FeedbackState) -> None:
    variants = {v["name"]: v for v in spec["variants"]}
    names = {}
    for arm, variant in (("champion", policy.champion), ("challenger", policy.challenger)):
        names[arm] = route_name(policy.route, arm)
        await _put_gate_route(state.routes, names[arm], spec, variants[variant])
    settings = GateIn.model_validate(policy.gate)
    replay = None
    if settings.replay is not None:
        replay = FromFeedback(route=policy.route, since_s=settings.replay_since_s, limit=settings.replay)
    body = ComparisonIn(
        champion_route=names["champion"], challenger_route=names["challenger"], rubric=settings.rubric,
        judge_route=settings.judge_route, eval_set=settings.eval_set, eval_set_version=settings.eval_set_version,
        replay=replay, margin=settings.margin, max_tokens=settings.max_tokens,
        model=policy.model_name, model_version=policy.registered_version,
    )  # fmt: skip
    found = await gate.queue(session, body=body, state=state)  # an APIError leaves the policy waiting, retried
    policy.gate_job_id, policy.gate_comparison_id = policy.job_id, found.id
    policy.gate_verdict = policy.gate_run_id = policy.gate_reason = None
    policy.status = f"offline gate {found.id} queued on {policy.served_model} version {policy.registered_version}"


async def _remove_gate_routes(routes: GatewayRoutes, route: str) -> None:
    """Best effort: a gateway that cannot be reached now leaves them, and the next gate rewrites them anyway."""
    for arm in ("champion", "challenger"):
        try:
            await routes.delete(route_name(route, arm))
        except PlatformError as exc:
            logger.warning("gate route of %s left on the gateway: %s", route, exc)


async def _put_gate_route(routes: GatewayRoutes, name: str, spec: dict, variant: dict) -> None:
    """The route's spec with one variant taking all its traffic (rewritten at each gate: it follows the route).
    No fallbacks and no rules: a failing arm must fail its rows, not be answered by another model."""
    gate_spec = {**spec, "variants": [{**variant, "weight": 1.0}], "fallbacks": [], "rules": []}
    try:
        await routes.put(name, gate_spec)
    except PlatformError as exc:
        raise PlatformError(f"cannot set up the gate route {name!r}: {exc}") from None
