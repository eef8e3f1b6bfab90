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

KEY_PREFIX = "sk-llmops-"
_DISPLAY_CHARS = 6


def hash_key(secret: str, *, key_secret: str) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, the same value as hmac.new(...).hexdigest() at a fraction of the cost.
    return hmac.digest(key_secret.encode(), secret.encode(), "sha256").hex()


def to_public(key: ApiKey) -> KeyPublic:
    return KeyPublic(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        limits=Limits(rpm=key.rpm, tpm=key.tpm, tpd=key.tpd),
        allowed_routes=key.allowed_routes,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


async def create(session: AsyncSession, *, data: KeyCreate, key_secret: str) -> tuple[ApiKey, str]:
    """Returns the stored key and its secret; the secret exists only in this return value."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = data.expires_at or (now + timedelta(seconds=data.expires_in_s) if data.expires_in_s else None)
    key = ApiKey(
        id="key_" + secrets.token_hex(8),
        name=data.name,
        prefix=secret[: len(KEY_PREFIX) + _DISPLAY_CHARS],
        key_hash=hash_key(secret, key_secret=key_secret),
        rpm=data.limits.rpm,
        tpm=data.limits.tpm,
        tpd=data.limits.tpd,
        allowed_routes=data.allowed_routes,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(key)
    await session.commit()
    return key, secret


async def list_all(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all())


async def get(session: AsyncSession, *, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise APIError(404, f"key {key_id!r} not found", code="key_not_found")
    return key


async def get_by_hash(session: AsyncSession, *, key_hash: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


async def get_by_hashes(session: AsyncSession, *, key_hashes: set[str]) -> list[ApiKey]:
    rows: list[ApiKey] = []
    ordered = sorted(key_hashes)
    for start in range(0, len(ordered), 500):  # bounded IN lists
        chunk = ordered[start : start + 500]
        rows += (await session.scalars(select(ApiKey).where(ApiKey.key_hash.in_(chunk)))).all()
    return rows


async def update(session: AsyncSession, *, key_id: str, data: KeyUpdate) -> ApiKey:
    key = await get(session, key_id=key_id)
    fields = data.model_dump(exclude_unset=True)
    if "name" in fields and data.name is not None:
        key.name = data.name
    if "limits" in fields:
        limits = data.limits or Limits()
        key.rpm, key.tpm, key.tpd = limits.rpm, limits.tpm, limits.tpd
    if "allowed_routes" in fields:
        key.allowed_routes = data.allowed_routes
    if "expires_at" in fields:
        if data.expires_at is not None and data.expires_at.tzinfo is None:
            raise APIError(422, "expires_at needs a timezone", code="invalid_request")
        key.expires_at = data.expires_at
    await session.commit()
    return key


async def revoke(session: AsyncSession, *, key_id: str) -> ApiKey:
    key = await get(session, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.commit()
    return key
