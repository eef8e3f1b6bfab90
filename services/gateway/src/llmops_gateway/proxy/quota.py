"""The reserve-quota stage: a request's worst case counted against its key's and route's limits before it goes out."""

import logging
import math

from llmops_common.errors import APIError
from llmops_gateway.keys.auth import AuthenticatedKey
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.proxy import tokens
from llmops_gateway.proxy.schemas import CompletionRequestBase
from llmops_gateway.quotas.headers import limit_headers
from llmops_gateway.quotas.limiter import QuotaExceeded, QuotaLimiter, QuotaStoreUnavailable
from llmops_gateway.quotas.plan import Reservation
from llmops_gateway.routing.schemas import RouteSpec
from llmops_gateway.settings import QuotaFailureMode

logger = logging.getLogger(__name__)


class QuotaCheck:
    def __init__(
        self,
        limiter: QuotaLimiter,
        metrics: GatewayMetrics,
        *,
        failure_mode: QuotaFailureMode,
        default_max_tokens: int,
    ) -> None:
        self._limiter, self._metrics = limiter, metrics
        self._failure_mode = failure_mode
        self._default_max_tokens = default_max_tokens

    async def reserve(
        self, key: AuthenticatedKey, route: str, spec: RouteSpec, parsed: CompletionRequestBase, *, extra_tokens: int
    ) -> Reservation | None:
        """The reservation (None: no limit applies, or Redis is down and the failure mode is open); raises a 429
        ``APIError`` over a limit, a 503 when Redis is down and the failure mode is closed."""
        if key.limits.empty and spec.limits.empty:
            return None  # nothing to count: no estimate, no Redis
        cost = (
            extra_tokens
            + tokens.estimate_prompt_tokens(parsed)
            + tokens.completion_budget(parsed, default=self._default_max_tokens)
        )
        try:
            return await self._limiter.reserve(
                key_id=key.id, key_limits=key.limits, route=route, route_limits=spec.limits, tokens=cost
            )
        except QuotaExceeded as exc:
            self._metrics.quota_refusals.labels(exc.scope, exc.kind).inc()
            raise _refusal(exc) from None
        except QuotaStoreUnavailable as exc:
            mode = self._failure_mode
            self._metrics.quota_store_errors.labels(mode.value).inc()
            logger.error("quota store unreachable", extra={"mode": mode.value, "error": str(exc)})
            if mode is QuotaFailureMode.closed:
                raise APIError(503, "quota store unavailable", code="quota_store_unavailable") from None
            return None

    def reconcile(self, reservation: Reservation | None, *, actual_tokens: int) -> None:
        if reservation is not None:
            self._limiter.reconcile(reservation, actual_tokens=actual_tokens)


def _refusal(exc: QuotaExceeded) -> APIError:
    headers = limit_headers(exc.kind, exc.limit, 0, exc.retry_after_s)
    if exc.cost > exc.limit:  # waiting never helps, so no Retry-After
        message = (
            f"request needs {exc.cost} tokens, over the {exc.scope} {exc.kind} limit of {exc.limit}; lower max_tokens"
        )
        return APIError(429, message, code="request_over_limit", headers=headers)
    retry_after = max(1, math.ceil(exc.retry_after_s))
    headers["retry-after"] = str(retry_after)
    message = f"{exc.scope} limit reached: {exc.kind} {exc.limit}; retry after {retry_after}s"
    return APIError(429, message, code=f"{exc.kind}_limit_exceeded", headers=headers)
