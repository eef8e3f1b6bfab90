"""``/v1/retraining/{route}``: when a route's feedback trains a challenger by itself (admin token)."""

from fastapi import APIRouter, Response

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.openapi import link, links
from llmops_feedback.deps import AdminDep, SessionDep, StateDep
from llmops_feedback.retraining import service
from llmops_feedback.retraining.schemas import RetrainingIn, RetrainingList, RetrainingPublic, RetrainingSet

router = APIRouter(prefix="/v1/retraining", tags=["retraining"], responses=ERROR_RESPONSES)


@router.get("")
async def list_policies(_: AdminDep, session: SessionDep) -> RetrainingList:
    return RetrainingList(data=[RetrainingPublic.model_validate(p) for p in await service.list_(session)])


_POLICY, _ROUTE = "/v1/retraining/{route}", "$request.path.route"


@router.put(
    "/{route}",
    openapi_extra=links(200, read=link("get", _POLICY, route=_ROUTE), delete=link("delete", _POLICY, route=_ROUTE)),
)
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


# A platform configuration file's part of the feedback service (``llmops apply|diff|export``): policies as the file
# holds them, every default filled in, so a file and the service compare field by field.
config_router = APIRouter(prefix="/v1/config/retraining", tags=["retraining"], responses=ERROR_RESPONSES)


@config_router.get("")
async def export_policies(_: AdminDep, session: SessionDep) -> RetrainingSet:
    """Every policy's settings (not its state): re-applied, they change nothing."""
    fields = RetrainingIn.model_fields.keys()
    policies = await service.list_(session)
    return RetrainingSet(policies={p.route: RetrainingIn(**{f: getattr(p, f) for f in fields}) for p in policies})


@config_router.post("/validate")
async def validate(data: RetrainingSet, _: AdminDep) -> RetrainingSet:
    """Checks policies without storing them (a file's dry run: nothing changes anywhere until every part of it is
    valid). Whether the champion is a variant of the route is checked by the caller, which knows the route the same
    file gives it."""
    for route, policy in data.policies.items():
        if policy.champion == policy.challenger:
            raise APIError(
                422, "champion and challenger must be different variants", param=f"policies.{route}.challenger"
            )
    return data
