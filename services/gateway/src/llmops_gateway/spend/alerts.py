"""Budget alerts: a budget used past ``share`` of its period sets off one webhook call for the whole platform.

Every budgeted reservation already tells how much of each budget is left (Redis answers it). The first time a
process sees a budget past the share in a period, it claims the alert in Redis (SET NX, kept until the period
ends): of all replicas only the one that claims it posts, once per budget and period. The post runs in the
background; a failed post is logged, never retried into a storm. The Prometheus rule on
``llmops_gateway_budget_used_ratio`` (deploy/) alerts the same way without the webhook.
"""

import asyncio
import logging
import time

import aiohttp
import redis.asyncio as redis
from redis.exceptions import RedisError

from llmops_common.http import describe_error
from llmops_gateway.money import format_amount
from llmops_gateway.quotas.plan import Reservation

logger = logging.getLogger(__name__)

_PERIODS = {"cost_day": "day", "cost_month": "month"}
_MAX_SEEN = 10_000


class BudgetAlerts:
    def __init__(
        self,
        client: redis.Redis,
        http: aiohttp.ClientSession,
        *,
        prefix: str,
        share: float,
        webhook_url: str | None,
        currency: str,
    ) -> None:
        self._redis, self._http = client, http
        self._prefix, self._share, self._url, self._currency = prefix, share, webhook_url, currency
        self._seen: set[tuple] = set()  # (counter, window) this process has handled: no Redis call again
        self._tasks: set[asyncio.Task] = set()

    def observe(self, reservation: Reservation) -> None:
        plan = reservation.plan
        if self._url is None or plan is None:
            return
        for i, base in plan.cost_counter_bases:
            scope, kind, limit = plan.limits[i]
            used = limit - max(0, reservation.remaining[i])
            if used < self._share * limit:
                continue
            seen = (base, reservation.windows[i])
            if seen in self._seen:
                continue
            if len(self._seen) >= _MAX_SEEN:
                self._seen.clear()
            self._seen.add(seen)
            alert = {
                "scope": scope,
                "owner": plan.owners[i],
                "period": _PERIODS[kind],
                "budget": format_amount(limit),
                "used": format_amount(used),
                "share": round(used / limit, 4),
                "threshold": self._share,
                "currency": self._currency,
                "resets_at": round(time.time() + reservation.reset_s[i]),
            }
            claim = f"{base}:alerted:{reservation.windows[i]}"
            task = asyncio.create_task(self._send(claim, max(1, round(reservation.reset_s[i])) + 120, alert))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, claim: str, ttl_s: int, alert: dict) -> None:
        try:
            if not await self._redis.set(claim, 1, nx=True, ex=ttl_s):
                return  # another replica (or an earlier process) has sent it
            async with self._http.post(self._url, json=alert, timeout=aiohttp.ClientTimeout(total=10)) as response:
                if response.status >= 400:
                    logger.warning("budget alert webhook refused", extra={"status": response.status, **alert})
                else:
                    logger.info("budget alert sent", extra=alert)
        except (RedisError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("budget alert not sent", extra={"error": describe_error(exc), **alert})

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
