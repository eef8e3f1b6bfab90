"""Experiments: create, read, decide, and apply decisions to the gateway and the registry.

A decision is recorded first (with its evidence and the state it moves the experiment to, in one transaction
guarded by the experiment's revision, so two deciders never both act) and applied after: the route's split set
on the gateway, the champion alias moved or the rejected version tagged in the registry. Each of those sets an
absolute state, so a decision left unapplied (the gateway was down, the process restarted) is applied again later
(``apply_pending``) with the same result. Manual promote/rollback/stop take the same path, with the admin as actor.
"""

import secrets
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.contracts.adapters import served_name, split_served_name
from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_feedback.experiments.models import OPEN_STATUSES, Experiment, ExperimentDecision
from llmops_feedback.experiments.policy import Action, Decision, ExperimentPolicy, decide
from llmops_feedback.experiments.readout import ArmCounts, assignments, count_arms
from llmops_feedback.experiments.schemas import ExperimentCreate
from llmops_feedback.platform import GatewayRoutes, PlatformError, Registry, unavailable

REJECTED_TAG = "llmops.rejected"
# The status each concluding action leaves ("revert": a promotion rolled back; "stop": by an admin).
_CONCLUSIONS = {
    "promote": "promoted",
    "rollback": "rolled_back",
    "revert": "rolled_back",
    "keep_champion": "kept",
    "halt": "halted",
    "stop": "stopped",
}


def new_id() -> str:
    return f"exp_{secrets.token_hex(6)}"


async def create(
    session: AsyncSession, *, data: ExperimentCreate, actor: str, routes: GatewayRoutes, registry: Registry
) -> Experiment:
    try:
        policy = ExperimentPolicy.from_dict(data.policy)
    except (TypeError, ValueError) as exc:
        raise APIError(422, f"policy: {exc}", code="invalid_policy", param="policy") from None
    try:
        spec = await routes.get(data.route)
    except PlatformError as exc:
        raise unavailable(exc) from None
    if spec is None:
        raise APIError(404, f"route {data.route!r} not found", code="route_not_found", param="route")
    variants = {v["name"]: v for v in spec["variants"]}
    for field in ("champion", "challenger"):
        if getattr(data, field) not in variants:
            raise APIError(422, f"route {data.route!r} has no variant {getattr(data, field)!r}", param=field)
    if data.champion == data.challenger:
        raise APIError(422, "champion and challenger must be different variants", param="challenger")
    others = [n for n, v in variants.items() if n not in (data.champion, data.challenger) and v["weight"] > 0]
    if others:
        raise APIError(422, f"variants {others} also carry traffic: set their weight to 0 first", param="route")
    if await session.scalar(select(Experiment.id).where(Experiment.open_route == data.route)):
        raise APIError(409, f"route {data.route!r} already has an open experiment", code="experiment_open")
    champion_model, champion_version = await _pin(registry, variants[data.champion]["model"], "champion")
    challenger_model, challenger_version = await _pin(registry, variants[data.challenger]["model"], "challenger")
    if challenger_version is not None:
        await _check_offline_gate(registry, challenger_model, challenger_version)
    now = utcnow()
    experiment = Experiment(
        id=new_id(),
        route=data.route,
        open_route=data.route,
        champion=data.champion,
        challenger=data.challenger,
        champion_model=champion_model,
        challenger_model=challenger_model,
        champion_version=champion_version,
        challenger_version=challenger_version,
        status="running",
        steps=list(policy.steps),
        step_index=0,
        share=policy.steps[0],
        policy=policy.to_dict(),
        revision=0,
        created_by=actor,
        created_at=now,
        step_started_at=now,
    )
    session.add(experiment)
    reason = f"started at {policy.steps[0]:.0%} to the challenger"
    session.add(_decision(experiment, "start", reason, {"policy": policy.to_dict()}, actor, now))
    await session.commit()  # the unique open_route makes a concurrent second experiment fail here
    await apply_pending(session, experiment=experiment, routes=routes, registry=registry)
    return experiment


async def _pin(registry: Registry, served: str, field: str) -> tuple[str | None, str | None]:
    """``(served name, version)`` for a registry arm (``<model>@<alias>``): the version the alias points to now."""
    parts = split_served_name(served)
    if parts is None:
        return None, None
    model, alias = parts
    try:
        version = await registry.alias_version(model, alias)
    except PlatformError as exc:
        raise unavailable(exc) from None
    if version is None:
        raise APIError(422, f"alias {alias!r} of model {model!r} is not in the registry", param=field)
    return served, version


async def _check_offline_gate(registry: Registry, served: str, version: str) -> None:
    """A challenger version the offline gate blocked (evaluation comparisons tag it) gets no live traffic."""
    model = split_served_name(served)[0]
    try:
        tags = await registry.version_tags(model, version)
    except PlatformError as exc:
        raise unavailable(exc) from None
    if tags.get("llmops.offline_gate") == "block":
        run = tags.get("llmops.offline_gate_run", "?")
        raise APIError(
            409, f"version {version} of {model!r} was blocked by the offline gate (MLflow run {run}): no canary",
            code="offline_gate_blocked", param="challenger",
        )  # fmt: skip


async def get(session: AsyncSession, *, experiment_id: str) -> Experiment:
    experiment = await session.get(Experiment, experiment_id)
    if experiment is None:
        raise APIError(404, f"experiment {experiment_id!r} not found", code="experiment_not_found")
    return experiment


async def list_(session: AsyncSession, *, route: str | None = None, status: str | None = None) -> list[Experiment]:
    query = select(Experiment).order_by(Experiment.created_at.desc())
    if route:
        query = query.where(Experiment.route == route)
    if status:
        query = query.where(Experiment.status == status)
    return list((await session.scalars(query)).all())


async def decisions(session: AsyncSession, *, experiment_id: str) -> list[ExperimentDecision]:
    query = select(ExperimentDecision).where(ExperimentDecision.experiment_id == experiment_id)
    return list((await session.scalars(query.order_by(ExperimentDecision.id))).all())


async def evaluate(
    session: AsyncSession, experiment: Experiment, registry: Registry
) -> tuple[ArmCounts, ArmCounts, Decision]:
    """The arms' counts and what the policy decides on them now (nothing is recorded)."""
    champion, challenger = await count_arms(session, experiment)
    moved = await _moved_aliases(experiment, registry)
    if moved:  # the arm's name now means another version: its data would mix two versions under one name
        reason = "; ".join(f"the {arm} alias moved from version {was} to {now}" for arm, (was, now) in moved.items())
        return champion, challenger, Decision(Action.HALT, reason.capitalize() + ".", {"moved": moved})
    now = utcnow()
    split = await assignments(session, experiment)
    decision = decide(
        champion=champion.stats,
        challenger=challenger.stats,
        units=(split.champion, split.challenger),
        planned_share=split.planned_share,
        step_index=experiment.step_index,
        step_age_s=(now - experiment.step_started_at).total_seconds(),
        age_s=(now - experiment.created_at).total_seconds(),
        policy=ExperimentPolicy.from_dict(experiment.policy),
    )
    return champion, challenger, decision


async def _moved_aliases(experiment: Experiment, registry: Registry) -> dict[str, tuple[str, str]]:
    """The registry arms whose alias points elsewhere than the version pinned at creation: ``{arm: (was, now)}``.
    Exposures of another version while the alias has not moved are the inference service still catching up with
    a move made before creation: left out of the readout (``other_versions``), not a reason to halt. An
    unreachable registry decides nothing either way."""
    moved = {}
    for arm, served, pinned in (
        ("champion", experiment.champion_model, experiment.champion_version),
        ("challenger", experiment.challenger_model, experiment.challenger_version),
    ):
        parts = split_served_name(served or "")
        if parts is None or pinned is None:
            continue
        try:
            current = await registry.alias_version(*parts)
        except PlatformError:
            continue
        if current != pinned:
            moved[arm] = (pinned, current or "none")
    return moved


async def act(
    session: AsyncSession,
    *,
    experiment: Experiment,
    action: str,
    reason: str,
    evidence: dict,
    actor: str,
    routes: GatewayRoutes,
    registry: Registry,
) -> ExperimentDecision | None:
    """Records ``action`` (a policy ``Action`` value, "revert" or "stop") and applies it. None when another
    decider changed the experiment first."""
    now, revision = utcnow(), experiment.revision
    changes: dict = {"revision": revision + 1}
    if action == Action.RAMP.value:
        index = experiment.step_index + 1
        changes |= {"step_index": index, "share": experiment.steps[index], "step_started_at": now}
    elif action == Action.PROMOTE.value:
        changes |= await _promotion(experiment, registry, routes)
    else:  # rollback, revert, keep, halt, stop: the challenger gets nothing
        changes["share"] = 0.0
    if action in _CONCLUSIONS:
        status = _CONCLUSIONS[action]
        changes["status"] = status
        if status != "halted":  # a halted experiment keeps its route until an admin stops or decides it
            changes |= {"open_route": None, "concluded_at": now}
    result = await session.execute(
        update(Experiment).where(Experiment.id == experiment.id, Experiment.revision == revision).values(**changes)
    )
    if result.rowcount != 1:
        await session.rollback()
        return None
    decision = _decision(experiment, action, reason, evidence, actor, now, share=changes.get("share", experiment.share))
    session.add(decision)
    await session.commit()
    await session.refresh(experiment)
    await apply_pending(session, experiment=experiment, routes=routes, registry=registry)
    return decision


async def _promotion(experiment: Experiment, registry: Registry, routes: GatewayRoutes) -> dict:
    """A registry challenger is promoted by alias: the champion alias of its model moves to its version and the
    champion variant serves that alias (so the next challenger is tested against it); what both were before is
    kept for rollback. Any other challenger takes the route's traffic."""
    alias = _promotion_alias(experiment)
    if alias is None:
        return {"share": 1.0}
    try:
        previous = await registry.alias_version(*alias)
        spec = await routes.get(experiment.route)
    except PlatformError as exc:
        raise unavailable(exc) from None
    champion = next((v for v in (spec or {}).get("variants", []) if v["name"] == experiment.champion), None)
    was = {k: champion.get(k) for k in ("model", "upstream", "api_key_env")} if champion else None
    return {"share": 0.0, "previous_champion_version": previous, "previous_champion": was}


def _promotion_alias(experiment: Experiment) -> tuple[str, str] | None:
    """``(model, alias)`` a promotion moves: the champion arm's alias when both arms are aliases of one registered
    model, else the challenger model's ``champion``. None when the challenger is not a registry arm."""
    challenger = split_served_name(experiment.challenger_model or "")
    if challenger is None or not experiment.challenger_version:
        return None
    champion = split_served_name(experiment.champion_model or "")
    return champion if champion and champion[0] == challenger[0] else (challenger[0], "champion")


async def apply_pending(
    session: AsyncSession, *, experiment: Experiment, routes: GatewayRoutes, registry: Registry
) -> None:
    """Applies the experiment's unapplied decisions, oldest first; stops at the first that fails (kept for later)."""
    query = select(ExperimentDecision).where(
        ExperimentDecision.experiment_id == experiment.id, ExperimentDecision.applied.is_(False)
    )
    for decision in (await session.scalars(query.order_by(ExperimentDecision.id))).all():
        try:
            await _apply(decision, experiment, routes, registry)
        except PlatformError as exc:
            decision.apply_error = str(exc)[:1000]
            await session.commit()
            return
        decision.applied, decision.apply_error = True, None
        await session.commit()


async def _apply(
    decision: ExperimentDecision, experiment: Experiment, routes: GatewayRoutes, registry: Registry
) -> None:
    alias, serves = _promotion_alias(experiment), None
    repoint = alias is not None and experiment.champion_model != served_name(*alias)  # champion serves it already?
    if decision.action == "promote" and alias:
        await registry.set_alias(*alias, experiment.challenger_version)
        if repoint:
            challenger = await _variant(routes, experiment.route, experiment.challenger) or {}
            # The champion variant serves the alias where the challenger was served, with the key sent there.
            serves = {"model": served_name(*alias), "upstream": challenger.get("upstream")}
            serves["api_key_env"] = challenger.get("api_key_env")
            # The champion variant moves to a name the inference service loads on its next registry sync: until
            # it lists the name, the route keeps its split (both arms answer) rather than send users to a 404.
            if serves["upstream"] and not await routes.serves(
                serves["upstream"], serves["model"], api_key_env=serves["api_key_env"]
            ):
                raise PlatformError(f"waiting for {serves['upstream']} to serve {serves['model']}")
    if decision.action == "revert" and alias:
        if experiment.previous_champion_version:
            await registry.set_alias(*alias, experiment.previous_champion_version)
        serves = experiment.previous_champion if repoint else None
    challenger_model = split_served_name(experiment.challenger_model or "")
    if decision.action == "rollback" and challenger_model and experiment.challenger_version:
        await registry.tag_version(challenger_model[0], experiment.challenger_version, REJECTED_TAG, "true")
    champion_serves = {k: v for k, v in (serves or {}).items() if v}
    if champion_serves.get("upstream") and "api_key_env" in serves:  # recorded since routes name the serving token
        champion_serves["api_key_env"] = serves["api_key_env"]  # the key of that upstream, or none
    await routes.set_split(
        experiment.route,
        champion=experiment.champion,
        challenger=experiment.challenger,
        share=decision.share,
        champion_serves=champion_serves,
    )


async def _variant(routes: GatewayRoutes, route: str, name: str) -> dict | None:
    spec = await routes.get(route)
    return next((v for v in (spec or {}).get("variants", []) if v["name"] == name), None)


def _decision(
    experiment: Experiment, action: str, reason: str, evidence: dict, actor: str, at: datetime, *, share=None
) -> ExperimentDecision:
    return ExperimentDecision(
        experiment_id=experiment.id,
        action=action,
        reason=reason,
        evidence=evidence,
        actor=actor,
        share=experiment.share if share is None else share,
        applied=False,
        created_at=at,
    )


async def decide_by_hand(
    session: AsyncSession, *, experiment: Experiment, what: str, actor: str, routes: GatewayRoutes, registry: Registry
) -> ExperimentDecision:
    """An admin's promote, rollback or stop: the controller's path, with the evidence of the moment."""
    if what == "rollback" and experiment.status == "promoted":
        what = "revert"
    elif experiment.status not in OPEN_STATUSES:
        raise APIError(409, f"experiment {experiment.id} is {experiment.status}", code="experiment_concluded")
    _, _, preview = await evaluate(session, experiment, registry)
    evidence = {"readout": preview.evidence, "controller_would": preview.action.value}
    decision = await act(
        session,
        experiment=experiment,
        action=what,
        reason=f"{what} by {actor}",
        evidence=evidence,
        actor=actor,
        routes=routes,
        registry=registry,
    )
    if decision is None:
        raise APIError(409, f"experiment {experiment.id} changed meanwhile; try again", code="experiment_changed")
    return decision


def is_open(experiment: Experiment) -> bool:
    return experiment.status in OPEN_STATUSES
