"""Waiting for another request's reload of a cached table (keys, routes, prices), but not for ever.

A request that finds a table expired while another request already reloads it waits for that reload, so a
change made a moment ago (a new price, a revoked key) applies to it as before. It waits ``STALE_AFTER_S`` at
most: a database that does not answer holds a reload for its connect timeout, and without the bound every
request would queue behind it; past the bound the table it has serves, and only the reloading request waits.
"""

import asyncio

STALE_AFTER_S = 0.5  # far above a healthy reload (milliseconds), far below a connect timeout (seconds)


async def take_turn(lock: asyncio.Lock, *, may_serve_stale: bool) -> bool:
    """Acquires ``lock`` (True: the caller reloads if the table is still expired, then releases it). With
    ``may_serve_stale`` (there is a table to serve), gives up after ``STALE_AFTER_S`` and returns False."""
    if not may_serve_stale:
        await lock.acquire()
        return True
    try:
        async with asyncio.timeout(STALE_AFTER_S):
            await lock.acquire()
    except TimeoutError:
        return False
    return True
