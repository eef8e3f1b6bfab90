"""The account-and-log stage: every request that reached routing ends here once, whatever became of it.

Metrics, the spend (real usage at the variant's current price), the quota and budget reconciliation (real usage
and cost replace the reservation) and the request-log record; nothing here delays the client.
"""

import logging
import time
from dataclasses import dataclass

from llmops_common.contracts.requestlog import RequestLogRecord, Usage
from llmops_gateway.keys.auth import AuthenticatedKey
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.proxy import genai, tokens
from llmops_gateway.proxy.quota import QuotaCheck
from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest
from llmops_gateway.quotas.plan import HeldReservation, Reservation
from llmops_gateway.rag.service import RagContext
from llmops_gateway.requestlog.sinks import RequestLogSink
from llmops_gateway.routing import selection
from llmops_gateway.spend.prices import PriceTable
from llmops_gateway.spend.recorder import SpendRecorder

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Call:
    """What is known about a request by the time it reaches the upstream."""

    request_id: str
    kind: str  # "chat" or "text"
    key: AuthenticatedKey
    route: str
    parsed: ChatCompletionRequest | CompletionRequest
    reservation: Reservation | HeldReservation | None  # held: settled by a batch worker's engine
    started: float  # perf_counter
    started_wall: float  # time.time
    rag: RagContext | None = None  # set when the prompt was augmented with retrieved context
    batch_id: str | None = None  # a batch line's batch
    rule: str | None = None  # the routing rule that chose the variant, if one did
    trace_id: str | None = None  # the request's trace (tracing on), kept in its request-log record
    span: object | None = None  # the completion's GenAI span (proxy/genai.py), ended here

    prompt_name: str | None = None  # the prompt the request was sent with (registered, built-in or inline)
    prompt_version: str | None = None  # its registry version; None: not a registered prompt


@dataclass(slots=True)
class Outcome:
    """How a call ended."""

    status: int
    variant: str = "-"  # "-": no variant was reached
    model: str | None = None
    version: str | None = None  # the registry version behind an adapter alias, as the upstream said
    usage: dict | None = None
    answer: str | None = None
    upstream_s: float = 0.0
    ttft: float | None = None
    error: str | None = None
    base_url: str | None = None  # the variant's upstream, for the trace
    finish_reasons: list[str] | None = None


class Accounting:
    def __init__(
        self,
        metrics: GatewayMetrics,
        quota: QuotaCheck,
        request_log: RequestLogSink,
        prices: PriceTable,
        spend: SpendRecorder,
    ) -> None:
        self._metrics, self._quota, self._request_log = metrics, quota, request_log
        self._prices, self._spend = prices, spend

    def refused(self, route: str, status: int) -> None:
        """A request refused before routing finished: counted for error rates, under a configured route only."""
        self._metrics.for_variant(route, "-").count(status)

    def finish(self, call: Call, outcome: Outcome) -> None:
        total_s = time.perf_counter() - call.started
        usage = outcome.usage or {}
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:
            prompt_tokens = tokens.estimate_prompt_tokens(call.parsed) if outcome.status == 200 else 0
        completion_tokens = usage.get("completion_tokens") or 0
        cached_tokens = _cached_tokens(usage)
        m = self._metrics.for_variant(call.route, outcome.variant)
        m.count(outcome.status)
        m.latency.observe(total_s)
        m.added_latency.observe(max(0.0, total_s - outcome.upstream_s))
        if outcome.ttft is not None:
            m.ttft.observe(outcome.ttft)
        m.prompt_tokens.inc(prompt_tokens)
        m.completion_tokens.inc(completion_tokens)
        price = self._prices.get(outcome.variant)
        cost = price.cost(prompt_tokens=prompt_tokens, cached_tokens=cached_tokens, completion_tokens=completion_tokens)
        self._quota.reconcile(call.reservation, actual_tokens=prompt_tokens + completion_tokens, actual_cost=cost)
        key = call.key
        self._spend.add(
            at=call.started_wall,
            key_id=key.id,
            team=key.team,
            route=call.route,
            variant=outcome.variant,
            prompt_version=_prompt_version(call),
            price_id=price.id,
            prompt_tokens=prompt_tokens,
            cached_tokens=cached_tokens,
            completion_tokens=completion_tokens,
            cost_nanos=cost,
        )
        if cost:
            self._metrics.add_spend(call.route, outcome.variant, key.team, cost)
        # Built without validation (every field comes from the gateway itself); serialised by the sink's writer.
        record = RequestLogRecord.model_construct(
            request_id=call.request_id,
            key_id=call.key.id,
            route=call.route,
            variant=outcome.variant,
            model=outcome.model,
            model_version=outcome.version,
            user_hash=selection.unit_id(selection.assignment_unit(call.parsed.user, call.key.id)),
            kind=call.kind,
            stream=call.parsed.stream,
            status=outcome.status,
            prompt=tokens.prompt_text(call.parsed),
            answer=outcome.answer,
            usage=Usage.model_construct(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            latency_ms=round(total_s * 1000, 3),
            ttft_ms=round(outcome.ttft * 1000, 3) if outcome.ttft is not None else None,
            started_at=call.started_wall,
            finished_at=time.time(),
            retrieved_ids=call.rag.retrieved_ids if call.rag is not None else [],
            team=key.team,
            rule=call.rule,
            prompt_name=call.prompt_name,
            prompt_version=call.prompt_version,
            cost_nanos=cost,
            error=outcome.error,
            batch_id=call.batch_id,
            trace_id=call.trace_id,
        )
        if call.span is not None:
            genai.finish(
                call.span,
                status=outcome.status,
                variant=outcome.variant,
                model=outcome.model,
                base_url=outcome.base_url,
                input_tokens=prompt_tokens,
                output_tokens=completion_tokens,
                finish_reasons=outcome.finish_reasons,
                error=outcome.error,
            )
        if not self._request_log.emit(record):
            self._metrics.request_log_dropped.inc()
            logger.error("request log queue full; record dropped", extra={"route": call.route})


def _prompt_version(call: Call) -> str:
    """What spend is grouped by: ``<name>/<version>`` of a registered prompt (a version alone is ambiguous across
    prompts), a built-in or inline template's name (itself a version), "" without a prompt."""
    if call.prompt_version is not None:
        return f"{call.prompt_name}/{call.prompt_version}"
    return call.prompt_name or ""


def _cached_tokens(usage: dict) -> int:
    """Prompt tokens the upstream served from its cache (OpenAI's ``prompt_tokens_details``), priced apart."""
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        return 0
    cached = details.get("cached_tokens")
    return cached if isinstance(cached, int) and cached > 0 else 0
