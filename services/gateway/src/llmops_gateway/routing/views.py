from typing import Annotated

from fastapi import APIRouter, Depends, Path

from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import link, links
from llmops_gateway.admin import audit
from llmops_gateway.deps import IdentityDep, PromptsDep, RoutesDep, SessionDep, get_identity
from llmops_gateway.routing import revisions, service
from llmops_gateway.routing.models import Route
from llmops_gateway.routing.schemas import (
    NAME_PATTERN,
    RevertRequest,
    RevisionList,
    RevisionPublic,
    RouteList,
    RoutePublic,
    RouteSpec,
)

# Roles: every admin identity reads routes and their history; only admins change them.
router = APIRouter(
    prefix="/admin/routes", tags=["admin: routes"], dependencies=[Depends(get_identity)], responses=ERROR_RESPONSES
)

RouteName = Annotated[str, Path(pattern=NAME_PATTERN)]

_ROUTE, _NAME = "/admin/routes/{name}", "$request.path.name"
# A route read back and written again as it was: the same spec must be accepted (the round trip).
_WRITE_BACK = {field: f"$response.body#/{field}" for field in RouteSpec.model_fields}


@router.put(
    "/{name}",
    openapi_extra=links(
        200,
        read=link("get", _ROUTE, name=_NAME),
        history=link("get", f"{_ROUTE}/revisions", name=_NAME),
        delete=link("delete", _ROUTE, name=_NAME),
    ),
)
async def put_route(
    name: RouteName,
    spec: RouteSpec,
    session: SessionDep,
    routes: RoutesDep,
    identity: IdentityDep,
    prompts: PromptsDep,
) -> RoutePublic:
    """Creates or replaces a route (a new revision, unless nothing changed). Every replica applies it within the
    route cache TTL, without a restart. A registered prompt it names must resolve now, to a template the gateway
    can fill (else 422 naming it)."""
    identity.require_admin()
    await prompts.check_route(spec)
    await audit.stage(session, identity, "routes.put", Route, name)
    route = await service.put(session, name=name, spec=spec, actor=identity.id)
    routes.invalidate()
    return service.to_public(route)


@router.get("", openapi_extra=links(200, read_first=link("get", _ROUTE, name="$response.body#/data/0/name")))
async def list_routes(session: SessionDep) -> RouteList:
    return RouteList(data=[service.to_public(r) for r in await service.list_all(session)])


@router.get(
    "/{name}", openapi_extra=links(200, write_back=link("put", _ROUTE, name=_NAME, body=_WRITE_BACK, whole_body=True))
)
async def get_route(name: RouteName, session: SessionDep) -> RoutePublic:
    return service.to_public(await service.get(session, name=name))


@router.delete("/{name}", status_code=204)
async def delete_route(name: RouteName, session: SessionDep, routes: RoutesDep, identity: IdentityDep) -> None:
    identity.require_admin()
    await audit.stage(session, identity, "routes.delete", Route, name)
    await service.delete(session, name=name, actor=identity.id)
    routes.invalidate()


@router.get(
    "/{name}/revisions",
    openapi_extra=links(
        200,
        revert_to_latest=link(
            "post", f"{_ROUTE}/revert", name=_NAME, body={"revision": "$response.body#/data/0/revision"}
        ),
    ),
)
async def list_revisions(name: RouteName, session: SessionDep) -> RevisionList:
    """Every change of the route, newest first (a deleted route keeps its history)."""
    rows = await revisions.list_for(session, route=name)
    return RevisionList(data=[RevisionPublic.model_validate(r, from_attributes=True) for r in rows])


@router.post("/{name}/revert")
async def revert_route(
    name: RouteName,
    body: RevertRequest,
    session: SessionDep,
    routes: RoutesDep,
    identity: IdentityDep,
    prompts: PromptsDep,
) -> RoutePublic:
    """The route exactly as it was at ``revision``, recorded as a new revision (a deleted route comes back). The
    prompts it names must still resolve (422 naming the first that does not)."""
    identity.require_admin()
    await audit.stage(session, identity, "routes.revert", Route, name)
    route = await service.revert(
        session, name=name, revision=body.revision, actor=identity.id, check=prompts.check_route
    )
    routes.invalidate()
    return service.to_public(route)
