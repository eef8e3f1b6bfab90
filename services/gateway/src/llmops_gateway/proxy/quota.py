"""The reserve-quota stage: a request's worst case counted against its key's and route's limits, and its
worst-case price against its key's and team's budgets, before it goes out."""

import logging
import math
from datetime import UTC, datetime

from llmops_common.errors import APIError
from llmops_gateway.keys.auth import AuthenticatedKey
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.money import format_amount
from llmops_gateway.proxy import tokens
from llmops_gateway.proxy.schemas import CompletionRequestBase
from llmops_gateway.quotas.headers import limit_headers
from llmops_gateway.quotas.limiter import QuotaExceeded, QuotaLimiter, QuotaStoreUnavailable
from llmops_gateway.quotas.plan import BUDGET_KINDS, HeldReservation, Reservation
from llmops_gateway.routing.schemas import RouteSpec
from llmops_gateway.settings import QuotaFailureMode
from llmops_gateway.spend.alerts import BudgetAlerts
from llmops_gateway.spend.prices import PriceTable

logger = logging.getLogger(__name__)


class QuotaCheck:
    def __init__(
        self,
        limiter: QuotaLimiter,
        metrics: GatewayMetrics,
        prices: PriceTable,
        alerts: BudgetAlerts,
        *,
        failure_mode: QuotaFailureMode,
        default_max_tokens: int,
        currency: str,
    ) -> None:
        self._limiter, self._metrics, self._prices, self._alerts = limiter, metrics, prices, alerts
        self._currency = currency
        self._failure_mode = failure_mode
        self._default_max_tokens = default_max_tokens

    async def reserve(
        self, key: AuthenticatedKey, route: str, spec: RouteSpec, parsed: CompletionRequestBase, *, extra_tokens: int
    ) -> Reservation | None:
        """The reservation (None: no limit applies, or Redis is down and the failure mode is open); raises a 429
        ``APIError`` over a limit, a 503 when Redis is down and the failure mode is closed."""
        prompt = extra_tokens + tokens.estimate_prompt_tokens(parsed) if self._counts(key, spec) else 0
        completion = tokens.completion_budget(parsed, default=self._default_max_tokens)
        return await self.reserve_tokens(key, route, spec, prompt=prompt, completion=completion)

    def _counts(self, key: AuthenticatedKey, spec: RouteSpec) -> bool:
        return not (key.limits.empty and spec.limits.empty and key.budget.empty and key.team_budget.empty)

    async def reserve_tokens(
        self, key: AuthenticatedKey, route: str, spec: RouteSpec, *, prompt: int, completion: int = 0
    ) -> Reservation | None:
        """``reserve`` for a request whose tokens are already estimated (an embedding request: no completion)."""
        await self._prices.refresh()  # every request is charged when it ends, budget or not
        if not self._counts(key, spec):
            return None  # nothing to count: no estimate, no Redis
        budgeted = not (key.budget.empty and key.team_budget.empty)
        price = 0
        if budgeted:  # the dearest variant the request may reach, before one is chosen
            input_price, output_price = self._prices.worst_case(spec)
            price = prompt * input_price + completion * output_price
        try:
            reservation = await self._limiter.reserve(
                key_id=key.id,
                key_limits=key.limits,
                route=route,
                route_limits=spec.limits,
                tokens=prompt + completion,
                cost=price,
                key_budget=key.budget,
                team=key.team,
                team_budget=key.team_budget,
            )
        except QuotaExceeded as exc:
            self._metrics.quota_refusals.labels(exc.scope, exc.kind).inc()
            if exc.kind in BUDGET_KINDS:
                raise _budget_refusal(exc, self._currency) from None
            raise _refusal(exc) from None
        except QuotaStoreUnavailable as exc:
            mode = self._failure_mode
            self._metrics.quota_store_errors.labels(mode.value).inc()
            logger.error("quota store unreachable", extra={"mode": mode.value, "error": str(exc)})
            if mode is QuotaFailureMode.closed:
                raise APIError(503, "quota store unavailable", code="quota_store_unavailable") from None
            return None
        if budgeted:
            self._metrics.observe_budgets(reservation)
            self._alerts.observe(reservation)
        return reservation

    def cost(self, variant: str, *, prompt_tokens: int, completion_tokens: int = 0) -> int:
        """What the tokens cost at the variant's current price (units of 1e-9 of the currency)."""
        price = self._prices.get(variant)
        return price.cost(prompt_tokens=prompt_tokens, cached_tokens=0, completion_tokens=completion_tokens)

    def reconcile(
        self, reservation: Reservation | HeldReservation | None, *, actual_tokens: int, actual_cost: int
    ) -> None:
        if reservation is not None:
            self._limiter.reconcile(reservation, actual_tokens=actual_tokens, actual_cost=actual_cost)


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


def _budget_refusal(exc: QuotaExceeded, currency: str) -> APIError:
    """429 ``budget_exceeded`` with the time the budget's period ends (its reset), in the body and headers."""
    period = "daily" if exc.kind == "cost_day" else "monthly"
    reset_s = max(1, math.ceil(exc.retry_after_s))
    # Budget periods end on whole seconds (midnight, the 1st): rounding absorbs the script's millisecond ceiling.
    resets_at = datetime.fromtimestamp(round(datetime.now(UTC).timestamp() + exc.retry_after_s), UTC)
    budget = f"{format_amount(exc.limit)} {currency}"
    headers = {"x-llmops-budget-reset": resets_at.isoformat()}
    if exc.cost > exc.limit:  # no period fits it: waiting never helps, so no Retry-After
        message = (
            f"request may cost up to {format_amount(exc.cost)} {currency}, over the {exc.scope}'s {period} budget of "
            f"{budget}; lower max_tokens"
        )
    else:
        headers["retry-after"] = str(reset_s)
        message = f"{exc.scope}'s {period} budget of {budget} is spent; it resets at {resets_at.isoformat()}"
    return APIError(429, message, code="budget_exceeded", headers=headers)
