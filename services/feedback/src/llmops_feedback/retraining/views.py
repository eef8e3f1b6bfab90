"""``/v1/retraining/{route}``: when a route's feedback trains a challenger by itself (admin token)."""

from fastapi import APIRouter, Response

from llmops_feedback.deps import AdminDep, SessionDep, StateDep
from llmops_feedback.retraining import service
from llmops_feedback.retraining.schemas import RetrainingIn, RetrainingList, RetrainingPublic

router = APIRouter(prefix="/v1/retraining", tags=["retraining"])


@router.get("")
async def list_policies(_: AdminDep, session: SessionDep) -> RetrainingList:
    return RetrainingList(data=[RetrainingPublic.model_validate(p) for p in await service.list_(session)])


@router.put("/{route}")
async def put(route: str, data: RetrainingIn, _: AdminDep, session: SessionDep, state: StateDep) -> RetrainingPublic:
    """Creates or replaces the route's policy (which also lets a policy stopped by failed jobs try again)."""
    return RetrainingPublic.model_validate(await service.put(session, route=route, data=data, routes=state.routes))


@router.get("/{route}")
async def show(route: str, _: AdminDep, session: SessionDep) -> RetrainingPublic:
    """The policy and where it stands: its last job, dataset, experiment, and the controller's last word."""
    return RetrainingPublic.model_validate(await service.get(session, route=route))


@router.delete("/{route}", status_code=204)
async def delete(route: str, _: AdminDep, session: SessionDep) -> Response:
    await service.delete(session, route=route)
    return Response(status_code=204)
