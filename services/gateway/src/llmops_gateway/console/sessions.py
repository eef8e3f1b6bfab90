"""Console sign-in sessions: a random token in an HttpOnly cookie, its record in Redis (so sign-out and expiry
end it on every replica at once), the admin identity that signed in (the platform admin token, or an admin
identity with its role and team), and a per-session CSRF token that every state-changing form must echo."""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
import redis.asyncio as redis

from llmops_gateway.admin.auth import PLATFORM, Identity
from llmops_gateway.admin.schemas import Role


@dataclass(frozen=True)
class ConsoleSession:
    csrf: str
    created_at: float
    identity: Identity = PLATFORM


class SessionStore:
    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: int, admin_token: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}console:session:"
        self.ttl_s = ttl_s
        # Sessions are bound to the admin token they were opened with: rotating the token signs everyone out.
        # A keyed digest, so Redis never holds the token itself.
        self._identity = hmac.new(admin_token.encode(), b"llmops-console-session", hashlib.sha256).hexdigest()

    def _key(self, token: str) -> str:
        # Only a digest of the cookie is stored: a Redis dump does not hand out live sessions.
        return self._prefix + hashlib.sha256(token.encode()).hexdigest()

    def _binding(self, identity: Identity) -> str:
        # The platform's sessions end when the admin token rotates; an identity's when it is revoked (checked on
        # every page, in SQL, by the console's dependency).
        return self._identity if identity.id == PLATFORM.id else "identity:" + identity.id

    async def open(self, identity: Identity = PLATFORM) -> tuple[str, ConsoleSession]:
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(csrf=secrets.token_urlsafe(32), created_at=time.time(), identity=identity)
        record = {
            "csrf": session.csrf,
            "created_at": session.created_at,
            "identity": self._binding(identity),
            "actor": identity.id,
            "role": identity.role.value,
            "team": identity.team,
        }
        await self._redis.set(self._key(token), orjson.dumps(record), ex=self.ttl_s)
        return token, session

    async def get(self, token: str | None) -> ConsoleSession | None:
        if not token or len(token) > 128:
            return None
        raw = await self._redis.get(self._key(token))
        if raw is None:
            return None
        record = orjson.loads(raw)
        identity = Identity(
            id=record.get("actor", PLATFORM.id), role=Role(record.get("role", "admin")), team=record.get("team")
        )
        if not hmac.compare_digest(record.get("identity", ""), self._binding(identity)):
            return None
        return ConsoleSession(csrf=record["csrf"], created_at=record["created_at"], identity=identity)

    async def close(self, token: str | None) -> None:
        if token and len(token) <= 128:
            await self._redis.delete(self._key(token))


def tokens_match(given: object, expected: str) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(given.encode(), expected.encode())
