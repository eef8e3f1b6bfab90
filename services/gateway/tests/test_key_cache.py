"""The key cache (keys.auth) in process, on a real SQLite database: how often it asks the database."""

import asyncio

from sqlalchemy import event, update

from llmops_common import sql
from llmops_common.errors import APIError
from llmops_gateway import db
from llmops_gateway.keys import service
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.keys.models import ApiKey
from llmops_gateway.keys.schemas import KeyCreate

SECRET = "k" * 32
TTL_S = 0.2


async def test_keys_in_use_are_refreshed_together_and_a_revocation_lands_within_the_ttl(tmp_path):
    engine = sql.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}")
    await db.migrate(engine)
    sessions = sql.make_sessionmaker(engine)
    async with sessions() as session:
        created = [await service.create(session, data=KeyCreate(name=f"k{i}"), key_secret=SECRET) for i in range(20)]
    queries = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: queries.append(args[2]))
    auth = KeyAuthenticator(sessions, key_secret=SECRET, ttl_s=TTL_S)
    try:
        for _ in range(20):  # 20 keys in constant use for 10 TTLs
            await asyncio.gather(*(auth.authenticate(f"Bearer {secret}") for _, secret in created))
            await asyncio.sleep(TTL_S / 2)
        # 20 first fetches, then about one query per half TTL for all keys together (per key: ~400).
        assert len(queries) <= 20 + 2 * 20
        async with sessions() as session:
            await session.execute(update(ApiKey).where(ApiKey.id == created[0][0].id).values(revoked_at=sql.utcnow()))
            await session.commit()
        await asyncio.sleep(TTL_S * 1.5)
        try:
            await auth.authenticate(f"Bearer {created[0][1]}")
            raise AssertionError("a revoked key still works after its TTL")
        except APIError as exc:
            assert exc.status == 401
        assert (await auth.authenticate(f"Bearer {created[1][1]}")).id == created[1][0].id
    finally:
        await auth.aclose()
        await engine.dispose()
