from typing import Annotated

from fastapi import APIRouter, Depends, Path

from llmops_gateway.deps import RoutesDep, SessionDep, require_admin
from llmops_gateway.routing import service
from llmops_gateway.routing.schemas import NAME_PATTERN, RouteList, RoutePublic, RouteSpec

router = APIRouter(prefix="/admin/routes", tags=["admin: routes"], dependencies=[Depends(require_admin)])

RouteName = Annotated[str, Path(pattern=NAME_PATTERN)]


@router.put("/{name}")
async def put_route(name: RouteName, spec: RouteSpec, session: SessionDep, routes: RoutesDep) -> RoutePublic:
    """Creates or replaces a route. Every replica applies it within the route cache TTL, without a restart."""
    route = await service.put(session, name=name, spec=spec)
    routes.invalidate()
    return service.to_public(route)


@router.get("")
async def list_routes(session: SessionDep) -> RouteList:
    return RouteList(data=[service.to_public(r) for r in await service.list_all(session)])


@router.get("/{name}")
async def get_route(name: RouteName, session: SessionDep) -> RoutePublic:
    return service.to_public(await service.get(session, name=name))


@router.delete("/{name}", status_code=204)
async def delete_route(name: RouteName, session: SessionDep, routes: RoutesDep) -> None:
    await service.delete(session, name=name)
    routes.invalidate()
