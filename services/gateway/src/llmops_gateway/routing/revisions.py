"""Route revisions: what each change of a route did, recorded by ``routing.service`` in the change's transaction."""

import json

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_gateway.routing.models import RouteRevision

_MAX_CHANGES = 50  # a rewrite of a large route is summed up, not listed field by field


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value}
    flat: dict[str, object] = {}
    for key, item in items:
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    if not flat and prefix:
        flat[prefix] = value  # an empty list or object is a value of its own
    return flat


def changes(before: dict | None, after: dict | None) -> list[str]:
    """Field by field, ``path: old -> new`` (``-`` for absent), in path order."""
    old, new = _flatten(before or {}), _flatten(after or {})
    lines = [
        f"{path}: {_show(old.get(path, _ABSENT))} -> {_show(new.get(path, _ABSENT))}"
        for path in sorted(old.keys() | new.keys())
        if old.get(path, _ABSENT) != new.get(path, _ABSENT)
    ]
    if len(lines) > _MAX_CHANGES:
        lines = [*lines[:_MAX_CHANGES], f"… and {len(lines) - _MAX_CHANGES} more"]
    return lines


_ABSENT = object()


def _show(value) -> str:
    return "-" if value is _ABSENT else json.dumps(value)


async def record(
    session: AsyncSession,
    *,
    route: str,
    action: str,
    before: dict | None,
    after: dict | None,
    actor: str,
    note: str | None = None,
) -> RouteRevision:
    """Adds the next revision of ``route`` to the session (committed with the change). Two writers racing for the same
    number: the unique constraint fails the second transaction, so neither change goes unrecorded."""
    # Without autoflush: a route another writer created at the same moment must fail at the commit (409), not here
    # when the query flushes this session's new route (a 500 from its unique name).
    with session.no_autoflush:
        last = await session.scalar(select(func.max(RouteRevision.revision)).where(RouteRevision.route == route))
    revision = RouteRevision(
        route=route,
        revision=(last or 0) + 1,
        action=action,
        spec=after,
        changes=([note] if note else []) + changes(before, after),
        actor=actor,
        at=utcnow(),
    )
    session.add(revision)
    return revision


async def list_for(session: AsyncSession, *, route: str) -> list[RouteRevision]:
    """Newest first; 404 for a name that never had a revision."""
    rows = list(
        (
            await session.scalars(
                select(RouteRevision).where(RouteRevision.route == route).order_by(RouteRevision.revision.desc())
            )
        ).all()
    )
    if not rows:
        raise APIError(404, f"route {route!r} has no revisions", code="route_not_found")
    return rows


async def get(session: AsyncSession, *, route: str, revision: int) -> RouteRevision:
    row = await session.scalar(
        select(RouteRevision).where(RouteRevision.route == route, RouteRevision.revision == revision)
    )
    if row is None:
        raise APIError(404, f"route {route!r} has no revision {revision}", code="revision_not_found")
    return row
