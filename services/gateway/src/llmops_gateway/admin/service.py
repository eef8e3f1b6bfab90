"""Admin identities: create (the token shown once), list, revoke."""

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_gateway.admin.auth import TOKEN_PREFIX
from llmops_gateway.admin.models import AdminIdentity
from llmops_gateway.admin.schemas import IdentityCreate, IdentityPublic
from llmops_gateway.keys.service import hash_key
from llmops_gateway.teams import service as teams


def to_public(identity: AdminIdentity) -> IdentityPublic:
    return IdentityPublic(
        id=identity.id,
        name=identity.name,
        role=identity.role,
        team=identity.team,
        prefix=identity.prefix,
        created_at=identity.created_at,
        revoked_at=identity.revoked_at,
    )


async def create(session: AsyncSession, *, data: IdentityCreate, key_secret: str) -> tuple[AdminIdentity, str]:
    await teams.require_named(session, name=data.team)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    identity = AdminIdentity(
        id="adm_" + secrets.token_hex(8),
        name=data.name,
        role=data.role.value,
        team=data.team,
        prefix=token[: len(TOKEN_PREFIX) + 6],
        token_hash=hash_key(token, key_secret=key_secret),
        created_at=utcnow(),
    )
    session.add(identity)
    await session.commit()
    return identity, token


async def list_all(session: AsyncSession) -> list[AdminIdentity]:
    return list((await session.scalars(select(AdminIdentity).order_by(AdminIdentity.created_at))).all())


async def revoke(session: AsyncSession, *, identity_id: str) -> AdminIdentity:
    identity = await session.get(AdminIdentity, identity_id)
    if identity is None:
        raise APIError(404, f"admin identity {identity_id!r} not found", code="identity_not_found")
    if identity.revoked_at is None:
        identity.revoked_at = utcnow()
        await session.commit()
    return identity
