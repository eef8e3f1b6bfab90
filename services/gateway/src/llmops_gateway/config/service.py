"""Make the gateway match a desired state: the plan (what differs), then every change in one transaction.

Routes change through ``routing.service`` (so each change is a revision, by the same path as ``PUT``), keys through
``keys.service``; a failure anywhere (a key the state names that does not exist, a database error) commits nothing.
"""

from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_gateway.admin import audit
from llmops_gateway.admin.auth import Identity
from llmops_gateway.config.schemas import Change, ConfigApply, ConfigExport, KeyState
from llmops_gateway.keys import service as keys
from llmops_gateway.keys.models import ApiKey
from llmops_gateway.keys.schemas import KeyUpdate
from llmops_gateway.limits import Limits
from llmops_gateway.routing import service as routes
from llmops_gateway.routing.models import Route


def key_state(key: ApiKey) -> KeyState:
    return KeyState(
        limits=Limits(rpm=key.rpm, tpm=key.tpm, tpd=key.tpd, max_tokens=key.max_tokens),
        allowed_routes=key.allowed_routes,
        allowed_collections=key.allowed_collections,
        tier=key.tier,
        budget=keys.budget_of(key).public(),
    )


async def _live_keys_by_name(session: AsyncSession) -> tuple[dict[str, ApiKey], set[str]]:
    """Live (not revoked) keys by name, and the names several live keys share (a file cannot tell them apart)."""
    rows = (await session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))).unique().all()
    counts = Counter(k.name for k in rows)
    return {k.name: k for k in rows if counts[k.name] == 1}, {n for n, c in counts.items() if c > 1}


async def export(session: AsyncSession) -> ConfigExport:
    by_name, shared = await _live_keys_by_name(session)
    return ConfigExport(
        routes={r.name: r.spec for r in await routes.list_all(session)},
        keys={name: key_state(k) for name, k in sorted(by_name.items())},
        unmanaged_keys=sorted(shared),
    )


async def plan(session: AsyncSession, data: ConfigApply) -> tuple[list[Change], dict[str, ApiKey]]:
    current = {r.name: r.spec for r in await routes.list_all(session)}
    changes: list[Change] = []
    for name, spec in sorted(data.routes.items()):
        after = routes.stored_document(spec, prefix=("routes", name))
        before = current.get(name)
        if before != after:
            changes.append(
                Change(kind="route", name=name, action="update" if before else "create", before=before, after=after)
            )
    if data.prune:
        for name in sorted(current.keys() - data.routes.keys()):
            changes.append(Change(kind="route", name=name, action="delete", before=current[name], after=None))
    by_name, shared = await _live_keys_by_name(session)
    for name, state in sorted(data.keys.items()):
        if name in shared:
            raise APIError(422, f"several live keys are named {name!r}: rename all but one", param=f"keys.{name}")
        if name not in by_name:
            raise APIError(
                422,
                f"no live key named {name!r}: create it with `llmops keys create --name {name}` (a file never holds "
                "secrets, so it cannot create keys)",
                code="key_not_found",
                param=f"keys.{name}",
            )
        before, after = key_state(by_name[name]).model_dump(mode="json"), state.model_dump(mode="json")
        if before != after:
            changes.append(Change(kind="key", name=name, action="update", before=before, after=after))
    return changes, by_name


async def apply(session: AsyncSession, data: ConfigApply, *, identity: Identity) -> list[Change]:
    """The plan, and unless it is a dry run, every change of it committed together (audited, routes revised)."""
    changes, by_name = await plan(session, data)
    if data.dry_run or not changes:
        return changes
    # The session's identity map holds clean objects weakly: a route flushed early (the revision's query autoflushes)
    # and dropped here would be gone before the audit log's commit hook looks for it, and its change unrecorded.
    held: list = []
    for change in changes:
        if change.kind == "route":
            action = "routes.delete" if change.action == "delete" else "routes.put"
            await audit.stage(session, identity, action, Route, change.name)
            if change.action == "delete":
                await routes.stage_delete(session, name=change.name, actor=identity.id)
            else:
                spec = data.routes[change.name]
                held.append(await routes.stage_put(session, name=change.name, spec=spec, actor=identity.id))
        else:
            key = by_name[change.name]
            await audit.stage(session, identity, "keys.update", ApiKey, key.id)
            state = data.keys[change.name]
            await keys.stage_update(session, key=key, data=KeyUpdate(**state.model_dump()))
    await routes.commit(session)
    return changes
