"""Liveness and readiness routes. Readiness runs the service's dependency checks."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter

from llmops_common.responses import OrjsonResponse

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]


def health_router(checks: dict[str, ReadinessCheck], *, timeout_s: float = 2.0) -> APIRouter:
    """``/healthz`` answers while the process lives; ``/readyz`` is 200 only when every check passes."""
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
            except Exception as exc:  # a failed check is a report, not an error
                logger.warning("readiness check failed", extra={"check": name, "error": repr(exc)})
                return name, f"error: {exc!r}"[:300]

        results = dict(await asyncio.gather(*(run(n, c) for n, c in checks.items())))
        ready = all(v == "ok" for v in results.values())
        return OrjsonResponse({"status": "ready" if ready else "not ready", "checks": results}, status_code=200 if ready else 503)

    return router
