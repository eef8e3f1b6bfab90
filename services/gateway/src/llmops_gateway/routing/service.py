"""Routes: CRUD in SQL, and the table every request reads, refreshed from SQL every few hundred milliseconds."""

import asyncio
import logging
import time

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmops_common.errors import APIError, validation_error
from llmops_common.sql import utcnow
from llmops_gateway.reloads import take_turn
from llmops_gateway.routing import revisions
from llmops_gateway.routing.models import Route
from llmops_gateway.routing.schemas import RoutePublic, RouteSpec

logger = logging.getLogger(__name__)


def to_public(route: Route) -> RoutePublic:
    return RoutePublic(name=route.name, updated_at=route.updated_at, **route.spec)


def stored_document(spec: RouteSpec, *, prefix: tuple = ()) -> dict:
    """The spec as it is stored, refused (422) unless it reads back through the same model: a route that PUT
    accepts can always be read, listed and served."""
    document = spec.model_dump(mode="json")
    try:
        RouteSpec.model_validate(document)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False), prefix=prefix) from None
    return document


async def stage_put(
    session: AsyncSession, *, name: str, spec: RouteSpec, actor: str, action: str | None = None, note: str | None = None
) -> Route:
    """The one path by which a route is created or changed (admin API, console, config apply, revert): the route and
    its revision are added to the session, committed by the caller with everything else of its transaction. An
    unchanged spec writes nothing, so applying the same state twice leaves no trace."""
    document = stored_document(spec)
    route = await session.get(Route, name)
    before = route.spec if route is not None else None
    if before == document:
        return route
    if route is None:
        route = Route(name=name, spec=document, updated_at=utcnow())
        session.add(route)
    else:
        route.spec, route.updated_at = document, utcnow()
    action = action or ("create" if before is None else "update")
    await revisions.record(session, route=name, action=action, before=before, after=document, actor=actor, note=note)
    return route


async def stage_delete(session: AsyncSession, *, name: str, actor: str) -> None:
    route = await get(session, name=name)
    await revisions.record(session, route=name, action="delete", before=route.spec, after=None, actor=actor)
    await session.delete(route)


async def commit(session: AsyncSession) -> None:
    """Commits a change of routes. Two changes of one route at once both take its next revision number; the unique
    constraint fails the second, which is refused whole (409) rather than recorded out of order or lost."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise APIError(
            409, "the route was changed by someone else at the same time; try again", code="concurrent_change"
        ) from None


async def put(
    session: AsyncSession, *, name: str, spec: RouteSpec, actor: str, action: str | None = None, note: str | None = None
) -> Route:
    route = await stage_put(session, name=name, spec=spec, actor=actor, action=action, note=note)
    await commit(session)
    return route


async def list_all(session: AsyncSession) -> list[Route]:
    return list((await session.scalars(select(Route).order_by(Route.name))).all())


async def get(session: AsyncSession, *, name: str) -> Route:
    route = await session.get(Route, name)
    if route is None:
        raise APIError(404, f"route {name!r} not found", code="route_not_found")
    return route


async def delete(session: AsyncSession, *, name: str, actor: str) -> None:
    await stage_delete(session, name=name, actor=actor)
    await commit(session)


async def revert(session: AsyncSession, *, name: str, revision: int, actor: str, check=None) -> Route:
    """The route exactly as it was at ``revision``, as a new revision (history is never rewritten). ``check``, if
    given, is awaited with the old spec before anything is written (the prompts it names must still resolve)."""
    old = await revisions.get(session, route=name, revision=revision)
    if old.spec is None:
        raise APIError(
            422,
            f"revision {revision} of {name!r} is its deletion; revert to an earlier one",
            code="invalid_request",
            param="revision",
        )
    try:
        spec = RouteSpec.model_validate(old.spec)
    except ValidationError as exc:  # stored before a constraint was tightened
        raise validation_error(exc.errors(include_url=False), prefix=("spec",)) from None
    if check is not None:
        await check(spec)
    return await put(session, name=name, spec=spec, actor=actor, action="revert", note=f"revert to revision {revision}")


class RouteTable:
    """The routes as the hot path sees them: one query loads all, at most once per ``ttl_s``.

    Weight changes made through any replica apply everywhere within ``ttl_s``, without a restart.
    An unknown name reloads sooner (a route just created through another replica), but at most once
    per ``MISS_RELOAD_S``, so requests for made-up models cannot hammer SQL.
    If SQL is unreachable the last table keeps serving.
    """

    MISS_RELOAD_S = 0.1

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl_s: float) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._routes: dict[str, RouteSpec] = {}
        self._loaded_at = float("-inf")
        self._loaded = False  # a table was read once: until then every request waits for it
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> RouteSpec | None:
        await self._refresh_if_older_than(self._ttl_s, wait=False)
        spec = self._routes.get(name)
        if spec is None:
            await self._refresh_if_older_than(self.MISS_RELOAD_S)
            spec = self._routes.get(name)
        return spec

    async def names(self) -> list[str]:
        await self._refresh_if_older_than(self._ttl_s, wait=False)
        return sorted(self._routes)

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    async def _refresh_if_older_than(self, max_age_s: float, *, wait: bool = True) -> None:
        """``wait=False``: another request's reload is waited for a moment only (``reloads.take_turn``); an
        unknown name (``wait=True``) waits for its reload, there being nothing to serve it meanwhile."""
        if time.monotonic() - self._loaded_at <= max_age_s:
            return
        if not await take_turn(self._lock, may_serve_stale=not wait and self._loaded):
            return
        try:  # one reload at a time
            if time.monotonic() - self._loaded_at <= max_age_s:
                return
            try:
                async with self._sessions() as session:
                    rows = await list_all(session)
                self._routes, self._loaded = _valid_routes(rows), True
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("route store unreachable; serving the last routes", extra={"error": repr(exc)})
            self._loaded_at = time.monotonic()
        finally:
            self._lock.release()


def _valid_routes(rows: list[Route]) -> dict[str, RouteSpec]:
    """One route stored before a constraint was tightened must not take every other route down with it."""
    routes = {}
    for row in rows:
        try:
            routes[row.name] = RouteSpec.model_validate(row.spec)
        except ValidationError as exc:
            logger.error(
                "stored route is no longer valid; not served until it is PUT again",
                extra={"route": row.name, "error": str(exc)},
            )
    return routes
