"""Liveness and readiness routes. Readiness runs the service's dependency checks."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter

from llmops_common.responses import OrjsonResponse

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]


def health_router(
    checks: dict[str, ReadinessCheck], *, degraded_by: dict[str, ReadinessCheck] | None = None, timeout_s: float = 2.0
) -> APIRouter:
    """``/healthz`` answers while the process lives. ``/readyz`` is 503 when a check in ``checks`` fails;
    a failing check in ``degraded_by`` only marks the service "degraded" (still 200): it can serve part of
    its traffic, and pulling every replica out of the load balancer would turn that into a full outage."""
    degraded_by = degraded_by or {}
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> OrjsonResponse:
        return OrjsonResponse({"status": "ok"})

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> OrjsonResponse:
        async def run(name: str, check: ReadinessCheck) -> tuple[str, str]:
            try:
                await asyncio.wait_for(check(), timeout_s)
                return name, "ok"
            except Exception as exc:  # noqa: BLE001 - whatever broke, readiness reports it rather than failing
                logger.warning("readiness check failed", extra={"check": name, "error": repr(exc)})
                return name, f"error: {exc!r}"[:300]

        everything = {**checks, **degraded_by}
        results = dict(await asyncio.gather(*(run(n, c) for n, c in everything.items())))
        if any(results[name] != "ok" for name in checks):
            status, code = "not ready", 503
        elif any(results[name] != "ok" for name in degraded_by):
            status, code = "degraded", 200
        else:
            status, code = "ready", 200
        return OrjsonResponse({"status": status, "checks": results}, status_code=code)

    return router
