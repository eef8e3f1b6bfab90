"""Who is calling the admin API, and what that role may do.

The platform admin token (GATEWAY_ADMIN_TOKEN) is the identity ``platform`` with the role ``admin``: services and
``llmops`` use it. Admin identities carry tokens of their own (``llmops-admin-…``), hashed at rest like API keys
and looked up in SQL on every admin request (admin traffic is rare; a revocation applies at once everywhere).
"""

import hmac
from dataclasses import dataclass

from sqlalchemy import select
from starlette.requests import Request

from llmops_common.auth import bearer_token, token_matches, unauthorized
from llmops_common.errors import APIError
from llmops_gateway.admin.models import AdminIdentity
from llmops_gateway.admin.schemas import Role
from llmops_gateway.keys.service import hash_key

TOKEN_PREFIX = "llmops-admin-"


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    role: Role
    team: str | None = None

    def may_write(self) -> bool:
        return self.role is Role.admin

    def require_admin(self) -> None:
        if self.role is not Role.admin:
            raise APIError(403, f"the {self.role} role may not do this", code="forbidden_role")

    def require_team(self, team: str | None) -> None:
        """A team-admin acts on its own team's things only; admins on all; viewers on nothing."""
        if self.role is Role.admin:
            return
        if self.role is Role.team_admin and team is not None and team == self.team:
            return
        raise APIError(403, f"the {self.role} role may not change this", code="forbidden_role")

    def team_filter(self, team: str | None) -> str | None:
        """The team a read is narrowed to: a team-admin sees its own team only."""
        if self.role is not Role.team_admin:
            return team
        if team is not None and team != self.team:
            raise APIError(403, "a team-admin sees its own team only", code="forbidden_role")
        return self.team


PLATFORM = Identity(id="platform", role=Role.admin)


async def identify(
    request: Request, *, admin_token: str, key_secret: str, sessions, previous_key_secrets: tuple[str, ...] = ()
) -> Identity:
    identity = await identify_token(
        bearer_token(request),
        admin_token=admin_token,
        key_secret=key_secret,
        sessions=sessions,
        previous_key_secrets=previous_key_secrets,
    )
    if identity is None:
        raise unauthorized("admin token required", code="invalid_admin_token")
    return identity


async def identify_token(
    token: str, *, admin_token: str, key_secret: str, sessions, previous_key_secrets: tuple[str, ...] = ()
) -> Identity | None:
    """The identity a token is (the platform admin token, or an admin identity's), or None: the API's bearer
    header and the console's sign-in form are checked alike."""
    if token_matches(token, admin_token):
        return PLATFORM
    if token.startswith(TOKEN_PREFIX) and len(token) <= 200:
        token_hash = hash_key(token, key_secret=key_secret)
        async with sessions() as session:
            row = await session.scalar(select(AdminIdentity).where(AdminIdentity.token_hash == token_hash))
            if row is None and previous_key_secrets:  # a key-secret rotation: stored again under the current one
                earlier = [hash_key(token, key_secret=previous) for previous in previous_key_secrets]
                row = await session.scalar(select(AdminIdentity).where(AdminIdentity.token_hash.in_(earlier)))
                if row is not None:
                    row.token_hash = token_hash
                    await session.commit()
        # The lookup matched on the hash; compare again in constant time so no path leaks timing.
        if row is not None and row.revoked_at is None and hmac.compare_digest(row.token_hash, token_hash):
            return Identity(id=row.id, role=Role(row.role), team=row.team)
    return None


async def is_active(session, *, identity_id: str) -> bool:
    """An admin identity that exists and is not revoked (the platform identity always is)."""
    if identity_id == PLATFORM.id:
        return True
    row = await session.get(AdminIdentity, identity_id)
    return row is not None and row.revoked_at is None
