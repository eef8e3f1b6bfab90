"""Another request's reload of a cached table is waited for, a moment at most when there is a table to serve."""

import asyncio

from llmops_gateway.reloads import STALE_AFTER_S, take_turn


async def test_a_quick_reload_is_waited_for_and_a_held_up_one_is_not():
    lock = asyncio.Lock()
    await lock.acquire()  # another request's reload
    asyncio.get_running_loop().call_later(STALE_AFTER_S / 5, lock.release)
    assert await take_turn(lock, may_serve_stale=True)  # it ended in time: this caller gets its turn
    # Held up (a database that does not answer): the caller gives up and serves what it has; the lock is not taken.
    assert not await take_turn(lock, may_serve_stale=True)
    assert lock.locked()
    # Nothing to serve meanwhile: the caller waits as long as the reload takes.
    asyncio.get_running_loop().call_later(STALE_AFTER_S * 2, lock.release)
    assert await take_turn(lock, may_serve_stale=False) and lock.locked()
