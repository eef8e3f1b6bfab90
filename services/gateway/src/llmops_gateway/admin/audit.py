"""The audit log: every admin change, written in the same transaction as the change itself.

A view stages an entry (who, what, which object, its state before) on its session; when the service function
commits, a ``before_commit`` hook adds the entry with the object's state after, so a change and its record are
committed together or not at all. States are the objects' public views: never a secret or a hash.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from llmops_common.sql import utcnow
from llmops_gateway.admin.auth import Identity
from llmops_gateway.admin.models import AdminIdentity, AuditEntry
from llmops_gateway.keys.models import ApiKey
from llmops_gateway.routing.models import Route
from llmops_gateway.spend.models import Price
from llmops_gateway.teams.models import Team


def _key(k: ApiKey) -> dict:
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "team": k.team,
        "tier": k.tier,
        "limits": {"rpm": k.rpm, "tpm": k.tpm, "tpd": k.tpd, "max_tokens": k.max_tokens},
        "budget_nanos": {"daily": k.budget_daily_nanos, "monthly": k.budget_monthly_nanos},
        "allowed_routes": k.allowed_routes,
        "allowed_collections": k.allowed_collections,
        "expires_at": k.expires_at.isoformat() if k.expires_at else None,
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
    }


def _team(t: Team) -> dict:
    return {
        "name": t.name,
        "description": t.description,
        "budget_nanos": {"daily": t.budget_daily_nanos, "monthly": t.budget_monthly_nanos},
    }


def _identity(i: AdminIdentity) -> dict:
    revoked = i.revoked_at.isoformat() if i.revoked_at else None
    return {"id": i.id, "name": i.name, "role": i.role, "team": i.team, "prefix": i.prefix, "revoked_at": revoked}


_DESCRIBE: dict[type, Callable[[object], dict]] = {
    ApiKey: _key,
    Team: _team,
    Route: lambda r: {"name": r.name, "spec": r.spec},
    Price: lambda p: {
        "id": p.id,
        "variant": p.variant,
        "input_nanos": p.input_nanos,
        "output_nanos": p.output_nanos,
        "cached_input_nanos": p.cached_input_nanos,
        "derived_from": p.derived_from,
    },
    AdminIdentity: _identity,
}


@dataclass
class _Staged:
    identity: Identity
    action: str
    kind: type
    target: str | None  # None: an object the change creates
    before: dict | None


async def stage(session: AsyncSession, identity: Identity, action: str, kind: type, target: str | None) -> None:
    """Records ``action`` on the ``kind`` object ``target`` (None: the one it creates) at the session's commit."""
    before = None
    if target is not None:
        current = await session.get(kind, target)
        before = _DESCRIBE[kind](current) if current is not None else None
    session.info.setdefault("audit", []).append(_Staged(identity, action, kind, target, before))


def _find(session: Session, staged: _Staged):
    if staged.target is None:
        created = [o for o in session.new if isinstance(o, staged.kind)]
        return created[0] if created else None
    for obj in (*session.new, *session.dirty, *session.identity_map.values()):
        if isinstance(obj, staged.kind) and str(session.identity_key(instance=obj)[1][0]) == staged.target:
            return obj
    return None


@event.listens_for(Session, "before_commit")
def _write_staged(session: Session) -> None:
    staged_entries = session.info.pop("audit", None)
    if not staged_entries:
        return
    found = [_find(session, staged) for staged in staged_entries]  # before the flush: new objects are still new
    session.flush()  # ids of created objects (prices) exist from here on
    for staged, obj in zip(staged_entries, found, strict=True):
        gone = obj is None or obj in session.deleted or inspect(obj).deleted
        after = None if gone else _DESCRIBE[staged.kind](obj)
        if after == staged.before:
            continue  # nothing changed (e.g. revoking a revoked key): nothing to record
        target = staged.target or (str(session.identity_key(instance=obj)[1][0]) if obj is not None else "-")
        session.add(
            AuditEntry(
                at=utcnow(),
                actor=staged.identity.id,
                role=staged.identity.role.value,
                action=staged.action,
                target=target,
                before=staged.before,
                after=after,
            )
        )


async def query(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    statement = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if since is not None:
        statement = statement.where(AuditEntry.at >= since)
    if actor is not None:
        statement = statement.where(AuditEntry.actor == actor)
    if action is not None:
        statement = statement.where(AuditEntry.action == action)
    if target is not None:
        statement = statement.where(AuditEntry.target == target)
    return list((await session.scalars(statement)).all())
