"""API keys: create, list, update, revoke, and look up by the keyed hash of a presented secret."""

import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_gateway.keys.models import ApiKey
from llmops_gateway.keys.schemas import KeyCreate, KeyPublic, KeyUpdate
from llmops_gateway.limits import Limits
from llmops_gateway.money import Budget, BudgetNanos
from llmops_gateway.teams import service as teams

KEY_PREFIX = "sk-llmops-"
_DISPLAY_CHARS = 6
DISPLAY_PREFIX_CHARS = len(KEY_PREFIX) + _DISPLAY_CHARS  # the start of a secret that lists show


def hash_key(secret: str, *, key_secret: str) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, the same value as hmac.new(...).hexdigest() at a fraction of the cost.
    return hmac.digest(key_secret.encode(), secret.encode(), "sha256").hex()


def to_public(key: ApiKey) -> KeyPublic:
    return KeyPublic(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        limits=Limits(rpm=key.rpm, tpm=key.tpm, tpd=key.tpd, max_tokens=key.max_tokens),
        allowed_routes=key.allowed_routes,
        allowed_collections=key.allowed_collections,
        team=key.team,
        tier=key.tier,
        budget=budget_of(key).public(),
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


def budget_of(key: ApiKey) -> BudgetNanos:
    return BudgetNanos(daily=key.budget_daily_nanos, monthly=key.budget_monthly_nanos)


def _set_budget(key: ApiKey, budget: Budget) -> None:
    nanos = budget.nanos()
    key.budget_daily_nanos, key.budget_monthly_nanos = nanos.daily, nanos.monthly


async def create(session: AsyncSession, *, data: KeyCreate, key_secret: str) -> tuple[ApiKey, str]:
    """Returns the stored key and its secret; the secret exists only in this return value."""
    await teams.require_named(session, name=data.team)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = data.expires_at or (now + timedelta(seconds=data.expires_in_s) if data.expires_in_s else None)
    key = ApiKey(
        id="key_" + secrets.token_hex(8),
        name=data.name,
        prefix=secret[:DISPLAY_PREFIX_CHARS],
        key_hash=hash_key(secret, key_secret=key_secret),
        rpm=data.limits.rpm,
        tpm=data.limits.tpm,
        tpd=data.limits.tpd,
        max_tokens=data.limits.max_tokens,
        allowed_routes=data.allowed_routes,
        allowed_collections=data.allowed_collections,
        team=data.team,
        tier=data.tier,
        created_at=now,
        expires_at=expires_at,
    )
    _set_budget(key, data.budget)
    session.add(key)
    await session.commit()
    return key, secret


async def list_all(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all())


async def ids_of_team(session: AsyncSession, *, team: str) -> list[str]:
    """The team's keys, revoked and expired ones too: the requests they made stay the team's."""
    return list((await session.scalars(select(ApiKey.id).where(ApiKey.team == team))).all())


async def get(session: AsyncSession, *, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise APIError(404, f"key {key_id!r} not found", code="key_not_found")
    return key


async def get_by_hash(session: AsyncSession, *, key_hash: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


async def rehash(
    session: AsyncSession, *, secret: str, key_hash: str, previous_secrets: tuple[str, ...]
) -> ApiKey | None:
    """A key stored under an earlier key secret (a rotation in progress): found by that hash and stored again under
    the current one (``key_hash``), so the earlier secret can be dropped once every key in use has come by."""
    earlier = [hash_key(secret, key_secret=previous) for previous in previous_secrets]
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash.in_(earlier)))
    if row is not None:
        row.key_hash = key_hash
        await session.commit()
    return row


async def get_by_hashes(session: AsyncSession, *, key_hashes: set[str]) -> list[ApiKey]:
    rows: list[ApiKey] = []
    ordered = sorted(key_hashes)
    for start in range(0, len(ordered), 500):  # bounded IN lists
        chunk = ordered[start : start + 500]
        rows += (await session.scalars(select(ApiKey).where(ApiKey.key_hash.in_(chunk)))).all()
    return rows


async def update(session: AsyncSession, *, key_id: str, data: KeyUpdate) -> ApiKey:
    key = await stage_update(session, key=await get(session, key_id=key_id), data=data)
    await session.commit()
    return key


async def stage_update(session: AsyncSession, *, key: ApiKey, data: KeyUpdate) -> ApiKey:
    """The change on the session, committed by the caller (``update``, or a config apply with other changes)."""
    fields = data.model_dump(exclude_unset=True)
    if "name" in fields and data.name is not None:
        key.name = data.name
    if "limits" in fields:
        limits = data.limits or Limits()
        key.rpm, key.tpm, key.tpd, key.max_tokens = limits.rpm, limits.tpm, limits.tpd, limits.max_tokens
    if "allowed_routes" in fields:
        key.allowed_routes = data.allowed_routes
    if "allowed_collections" in fields:
        key.allowed_collections = data.allowed_collections
    if "team" in fields:
        await teams.require_named(session, name=data.team)
        key.team = data.team
    if "tier" in fields:
        key.tier = data.tier
    if "budget" in fields:
        _set_budget(key, data.budget or Budget())
    if "expires_at" in fields:
        if data.expires_at is not None and data.expires_at.tzinfo is None:
            raise APIError(422, "expires_at needs a timezone", code="invalid_request")
        key.expires_at = data.expires_at
    return key


async def revoke(session: AsyncSession, *, key_id: str) -> ApiKey:
    key = await get(session, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.commit()
    return key
