"""Slowing down guesses at the console's sign-in: failed attempts counted per client address in Redis (one count
across replicas) over a fixed window; past the limit every attempt from that address is refused until the window
ends, the right token included, so a guesser learns nothing. A success clears the count."""

import hashlib

import redis.asyncio as redis


class SignInLimiter:
    def __init__(self, client: redis.Redis, *, prefix: str, max_failures: int, window_s: int) -> None:
        self._redis = client
        self._prefix = f"{prefix}console:signin:failures:"
        self.max_failures, self.window_s = max_failures, window_s

    def _key(self, address: str) -> str:
        return self._prefix + hashlib.sha256(address.encode()).hexdigest()[:32]

    async def retry_after(self, address: str) -> int | None:
        """Seconds until this address may try again, or None when it may try now."""
        key = self._key(address)
        failures = await self._redis.get(key)
        if failures is None or int(failures) < self.max_failures:
            return None
        ttl = await self._redis.ttl(key)
        return max(int(ttl), 1)

    async def failed(self, address: str) -> None:
        key = self._key(address)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=self.window_s, nx=True)  # the window starts at the first failure
            pipe.incr(key)  # keeps the key's expiry
            await pipe.execute()

    async def succeeded(self, address: str) -> None:
        await self._redis.delete(self._key(address))
