"""``/v1/experiments``: champion against challenger on a route, decided by evidence (admin token)."""

from typing import Literal

from fastapi import APIRouter

from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import RESPONSE_ID, link, links
from llmops_feedback.deps import AdminDep, SessionDep, StateDep
from llmops_feedback.experiments import service
from llmops_feedback.experiments.models import Experiment
from llmops_feedback.experiments.policy import ExperimentPolicy
from llmops_feedback.experiments.readout import ArmCounts
from llmops_feedback.experiments.schemas import (
    ArmReadout,
    DecisionPublic,
    ExperimentCreate,
    ExperimentDetail,
    ExperimentList,
    ExperimentPublic,
    Readout,
)
from llmops_feedback.experiments.stats import Moments, mean_interval, wilson_interval
from llmops_feedback.platform import Registry

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], responses=ERROR_RESPONSES)


@router.post(
    "",
    status_code=201,
    openapi_extra=links(
        201,
        read=link("get", "/v1/experiments/{experiment_id}", experiment_id=RESPONSE_ID),
        decide=link("post", "/v1/experiments/{experiment_id}/{what}", experiment_id=RESPONSE_ID),
    ),
)
async def create(data: ExperimentCreate, _: AdminDep, session: SessionDep, state: StateDep) -> ExperimentDetail:
    """Opens an experiment and sets the route's split to its first step."""
    experiment = await service.create(session, data=data, actor="admin", routes=state.routes, registry=state.registry)
    return await _detail(session, experiment, state.registry)


@router.get("")
async def list_experiments(
    _: AdminDep, session: SessionDep, route: str | None = None, status: str | None = None
) -> ExperimentList:
    experiments = await service.list_(session, route=route, status=status)
    return ExperimentList(data=[ExperimentPublic.model_validate(e) for e in experiments])


@router.get("/{experiment_id}")
async def show(experiment_id: str, _: AdminDep, session: SessionDep, state: StateDep) -> ExperimentDetail:
    """The experiment, its readout per arm with what the controller would decide now, and its decisions."""
    return await _detail(session, await service.get(session, experiment_id=experiment_id), state.registry)


@router.post("/{experiment_id}/{what}")
async def decide(
    experiment_id: str, what: Literal["promote", "rollback", "stop"], _: AdminDep, session: SessionDep, state: StateDep
) -> ExperimentDetail:
    """By hand, through the controller's path (recorded with the evidence of the moment). Rolling back a promoted
    experiment moves the champion alias back to the version it had before."""
    experiment = await service.get(session, experiment_id=experiment_id)
    await service.decide_by_hand(
        session, experiment=experiment, what=what, actor="admin", routes=state.routes, registry=state.registry
    )
    return await _detail(session, experiment, state.registry)


async def _detail(session, experiment: Experiment, registry: Registry) -> ExperimentDetail:
    champion, challenger, preview = await service.evaluate(session, experiment, registry)
    arms = [
        _arm("champion", experiment.champion, experiment.champion_model, experiment.champion_version, champion),
        _arm(
            "challenger", experiment.challenger, experiment.challenger_model, experiment.challenger_version, challenger
        ),
    ]
    decisions = await service.decisions(session, experiment_id=experiment.id)
    policy = ExperimentPolicy.from_dict(experiment.policy)
    nxt = None
    if service.is_open(experiment):
        nxt = DecisionPublic(
            id=0,
            action=preview.action.value,
            reason=preview.reason,
            evidence=preview.evidence,
            actor="controller",
            share=experiment.share,
            applied=False,
            apply_error=None,
            created_at=experiment.step_started_at,
        )
    return ExperimentDetail(
        **ExperimentPublic.model_validate(experiment).model_dump(),
        readout=Readout(primary_metric=policy.primary_metric, judge_rubric=policy.judge_rubric, arms=arms, next=nxt),
        decisions=[DecisionPublic.model_validate(d) for d in decisions],
    )


def _arm(arm: str, variant: str, model: str | None, version: str | None, counts: ArmCounts) -> ArmReadout:
    stats = counts.stats
    low, high = wilson_interval(stats.thumbs_up, stats.ratings) or (None, None)
    judge = stats.judge or Moments()
    judge_low, judge_high = mean_interval(judge) or (None, None)
    return ArmReadout(
        arm=arm,
        variant=variant,
        model=model,
        version=version,
        exposures=stats.exposures,
        other_versions=counts.other_versions,
        prompts=counts.prompts,
        ratings=stats.ratings,
        thumbs_up=stats.thumbs_up,
        up_rate=stats.thumbs_up / stats.ratings if stats.ratings else None,
        up_rate_low=low,
        up_rate_high=high,
        judge_scores=judge.n,
        judge_score=judge.mean,
        judge_score_low=judge_low,
        judge_score_high=judge_high,
        errors=stats.errors,
        error_rate=stats.errors / stats.exposures if stats.exposures else None,
        ttft_p95_ms=stats.ttft_p95_ms,
    )
