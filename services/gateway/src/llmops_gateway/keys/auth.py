"""Authenticating a request's API key on the hot path, with a short-lived cache in front of SQL."""

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Scope

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_gateway.keys import service
from llmops_gateway.keys.lockout import FailedAuthLimiter
from llmops_gateway.keys.models import ApiKey
from llmops_gateway.limits import Limits
from llmops_gateway.money import NO_BUDGET, BudgetNanos
from llmops_gateway.reloads import STALE_AFTER_S
from llmops_gateway.teams import service as teams

logger = logging.getLogger(__name__)

_MAX_CACHED = 100_000


@dataclass(frozen=True, slots=True)
class AuthenticatedKey:
    id: str
    name: str
    limits: Limits
    allowed_routes: frozenset[str] | None
    allowed_collections: frozenset[str] | None = None  # RAG collections, within each route's; None: the route's
    team: str | None = None
    tier: str | None = None
    budget: BudgetNanos = NO_BUDGET
    team_budget: BudgetNanos = NO_BUDGET  # the key's team's, as of the key's last refresh

    def may_use(self, route: str) -> bool:
        return self.allowed_routes is None or route in self.allowed_routes


@dataclass(frozen=True, slots=True)
class _Entry:
    key_hash: str
    key: AuthenticatedKey | None  # None: no such key, or revoked
    expires_at: datetime | None
    fetched_at: float


def _unauthorized(message: str, code: str) -> APIError:
    return APIError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


class KeyAuthenticator:
    """Resolves ``Authorization: Bearer sk-llmops-...`` to a key.

    Each entry (found or not) lives ``ttl_s`` seconds, so a revocation written by any replica is
    seen by every replica within that time. Every ``ttl_s / 2`` one query refreshes all the keys used
    since the last refresh, in the background: requests with a key in use never wait for the database,
    and the database sees a query per interval and process, not per key (one query per key and half TTL
    was 10% of a worker's CPU with two busy keys, and grew with every key in use). An unknown or expired
    entry is fetched on the request path; concurrent requests for it share one query (those for an expired
    one wait for it ``reloads.STALE_AFTER_S`` at most, then use the entry they have). With the store
    unreachable an expired entry keeps serving, another TTL at a time.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        key_secret: str,
        ttl_s: float,
        batch_token: str | None = None,
        previous_key_secrets: tuple[str, ...] = (),
        lockout: FailedAuthLimiter | None = None,
    ) -> None:
        self._sessions = sessions
        self.lockout = lockout  # repeated bad keys from one client (or at one key prefix) are refused for a while
        self.previous_key_secrets = previous_key_secrets  # a key-secret rotation in progress (SECURITY.md)
        self._batch_token = batch_token
        self._by_id: dict[str, tuple[float, _Entry]] = {}  # batch lines: key id -> (fetched at, entry)
        self._key_secret = key_secret
        self._ttl_s = ttl_s
        self._cache: dict[str, _Entry] = {}
        # Stored hash (HMAC-SHA256) by a keyed BLAKE2b of the secret, with a key only this process knows: the
        # HMAC through OpenSSL cost ~3 µs a request under load, the BLAKE2b a fraction of that.
        self._digest_key = os.urandom(32)
        self._stored_hashes: dict[bytes, str] = {}
        self._refreshing: dict[str, asyncio.Future[_Entry]] = {}
        self._generation = 0  # bumped by forget()
        self._in_use: set[str] = set()  # valid keys used since the last background refresh
        self._refresher: asyncio.Task | None = None

    @property
    def key_secret(self) -> str:
        return self._key_secret

    async def authenticate(self, authorization: str | None, scope: Scope | None = None) -> AuthenticatedKey:
        """``scope``: the request's ASGI scope, whose client address counts failures (``lockout``)."""
        if not authorization:
            raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'", "missing_api_key")
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        lockout = self.lockout
        client = lockout.address(scope) if lockout is not None and scope is not None else None
        well_formed = scheme.lower() == "bearer" and secret.startswith(service.KEY_PREFIX) and len(secret) <= 200
        key_prefix = secret[: service.DISPLAY_PREFIX_CHARS] if well_formed else None
        if lockout is not None:
            lockout.refuse_if_blocked("api", client, key_prefix)  # before any check: a blocked guess learns nothing
        if not well_formed:
            await self._failed(client, None)
            raise _unauthorized("invalid API key", "invalid_api_key")
        key_hash = self._stored_hash(secret)
        entry = self._cache.get(key_hash)
        if entry is None or time.monotonic() - entry.fetched_at > self._ttl_s:
            if lockout is not None:  # keys not cached here wait for SQL anyway: ask Redis about blocks elsewhere
                await lockout.check("api", client, key_prefix)
            try:
                if entry is not None and key_hash in self._refreshing:
                    # An expired entry whose query is already out waits for it a moment only (reloads.py).
                    done, _ = await asyncio.wait({self._refreshing[key_hash]}, timeout=STALE_AFTER_S)
                    entry = done.pop().result() if done else entry
                else:  # one caller leaving cancels nobody's query
                    entry = await asyncio.shield(self._refresh(key_hash, secret))
            except Exception as exc:
                # Key store down: a key seen recently keeps working; an unknown one cannot be checked.
                logger.warning("key store unreachable", extra={"error": repr(exc)})
                if entry is None:
                    raise APIError(
                        503, "key store unavailable", code="key_store_unavailable", headers={"Retry-After": "1"}
                    ) from exc
                if self._cache.get(key_hash) is entry:  # another TTL: the next request does not wait for it again
                    self._cache[key_hash] = replace(entry, fetched_at=time.monotonic())
        if entry.key is not None:  # unknown keys are not kept fresh: a flood of them must not grow the refresh
            self._in_use.add(key_hash)
            if self._refresher is None:
                self._refresher = asyncio.ensure_future(self._refresh_in_use())
        # The lookup matched on the hash; compare again in constant time so no path leaks timing.
        if entry.key is None or not hmac.compare_digest(entry.key_hash, key_hash):
            await self._failed(client, key_prefix)
            raise _unauthorized("invalid or revoked API key", "invalid_api_key")
        if entry.expires_at is not None and entry.expires_at <= utcnow():
            raise _unauthorized("API key expired", "expired_api_key")
        return entry.key

    async def _failed(self, client: str | None, key_prefix: str | None) -> None:
        if self.lockout is not None:
            await self.lockout.failed("api", client, key_prefix)

    def check_batch_token(self, authorization: str | None) -> None:
        """Raises 401 unless the bearer token is the batch workers' (compared in constant time)."""
        scheme, _, token = (authorization or "").partition(" ")
        if (
            not self._batch_token
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(token.strip().encode(), self._batch_token.encode())
        ):
            raise _unauthorized("invalid batch token", "invalid_batch_token")

    async def authenticate_batch(self, authorization: str | None, key_id: str) -> AuthenticatedKey:
        """A batch line sent by a batch worker on behalf of the key that made the batch: the workers' token, and
        the key as it is now (revoked or expired since the submission: refused like the key itself)."""
        self.check_batch_token(authorization)
        cached = self._by_id.get(key_id)
        if cached is None or time.monotonic() - cached[0] > self._ttl_s:
            async with self._sessions() as session:
                row = await session.get(ApiKey, key_id[:64])
            if len(self._by_id) >= _MAX_CACHED:
                self._by_id.clear()
            cached = self._by_id[key_id] = (time.monotonic(), _to_entry("", row))
        entry = cached[1]
        if entry.key is None:
            raise _unauthorized("the batch's key is revoked", "invalid_api_key")
        if entry.expires_at is not None and entry.expires_at <= utcnow():
            raise _unauthorized("the batch's key expired", "expired_api_key")
        return entry.key

    def _stored_hash(self, secret: str) -> str:
        digest = hashlib.blake2b(secret.encode(), key=self._digest_key).digest()
        key_hash = self._stored_hashes.get(digest)
        if key_hash is None:
            if len(self._stored_hashes) >= _MAX_CACHED:
                self._stored_hashes.clear()  # bounded memory under a flood of random keys
            key_hash = self._stored_hashes[digest] = service.hash_key(secret, key_secret=self._key_secret)
        return key_hash

    def _refresh(self, key_hash: str, secret: str) -> asyncio.Future[_Entry]:
        """The one query in flight for this key, started if there is none."""
        pending = self._refreshing.get(key_hash)
        if pending is None:
            pending = self._refreshing[key_hash] = asyncio.ensure_future(self._fetch(key_hash, secret))
            pending.add_done_callback(lambda done: self._finished(key_hash, done))
        return pending

    def _finished(self, key_hash: str, done: asyncio.Future) -> None:
        self._refreshing.pop(key_hash, None)
        if not done.cancelled() and done.exception() is not None:
            # A background refresh has no caller to raise to; the cached entry stays until its TTL.
            logger.warning("key refresh failed", extra={"error": repr(done.exception())})

    async def _fetch(self, key_hash: str, secret: str) -> _Entry:
        generation = self._generation
        async with self._sessions() as session:
            row = await service.get_by_hash(session, key_hash=key_hash)
            if row is None and self.previous_key_secrets:  # only unknown keys pay for a rotation
                row = await service.rehash(
                    session, secret=secret, key_hash=key_hash, previous_secrets=self.previous_key_secrets
                )
                if row is not None:
                    logger.info("key stored again under the current key secret", extra={"key_id": row.id})
        entry = _to_entry(key_hash, row)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()  # bounded memory under a flood of random keys
        if generation == self._generation:  # else an admin change came meanwhile: this row may predate it
            self._cache[key_hash] = entry
        return entry

    async def _refresh_in_use(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_s / 2)
            in_use, self._in_use = self._in_use, set()
            if not in_use:
                continue
            generation = self._generation
            try:
                async with self._sessions() as session:
                    rows = await service.get_by_hashes(session, key_hashes=in_use)
            except Exception as exc:  # noqa: BLE001 - whatever failed, the loop must live on to the next round
                logger.warning("key refresh failed", extra={"error": repr(exc), "keys": len(in_use)})
                continue  # entries stay until their TTL; then requests fetch (or fall back) themselves
            if generation == self._generation:  # else an admin change came meanwhile: these rows may predate it
                found = {row.key_hash: row for row in rows}
                for key_hash in in_use:
                    if key_hash in found:
                        self._cache[key_hash] = _to_entry(key_hash, found[key_hash])
                    else:
                        # Gone under this hash (deleted, or stored again by a replica hashing with another secret
                        # mid-rotation): the next request looks it up afresh, and caches what it finds.
                        self._cache.pop(key_hash, None)

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher

    def forget(self) -> None:
        """Drop the cache (this replica sees its own admin changes at once)."""
        self._generation += 1
        self._cache.clear()
        self._by_id.clear()


def _to_entry(key_hash: str, row: ApiKey | None) -> _Entry:
    now = time.monotonic()
    if row is None or row.revoked_at is not None:
        return _Entry(key_hash=key_hash, key=None, expires_at=None, fetched_at=now)
    key = AuthenticatedKey(
        id=row.id,
        name=row.name,
        limits=Limits(rpm=row.rpm, tpm=row.tpm, tpd=row.tpd, max_tokens=row.max_tokens),
        allowed_routes=frozenset(row.allowed_routes) if row.allowed_routes is not None else None,
        allowed_collections=frozenset(row.allowed_collections) if row.allowed_collections is not None else None,
        team=row.team,
        tier=row.tier,
        budget=service.budget_of(row),
        team_budget=teams.budget_of(row.team_row) if row.team_row is not None else NO_BUDGET,
    )
    return _Entry(key_hash=row.key_hash, key=key, expires_at=row.expires_at, fetched_at=now)
