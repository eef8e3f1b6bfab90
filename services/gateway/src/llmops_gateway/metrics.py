"""The gateway's Prometheus metrics, on a registry of its own per app (tests run several apps in one process)."""

import asyncio
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmops_common.metrics import LATENCY_BUCKETS

FLUSH_INTERVAL_S = 1.0


class _PendingCounter:
    __slots__ = ("_child", "pending")

    def __init__(self, child) -> None:
        self._child, self.pending = child, 0

    def inc(self, amount: float = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            amount, self.pending = self.pending, 0
            self._child.inc(amount)


class _PendingHistogram:
    """Observations counted per bucket here; written to the histogram's own values in ``flush``."""

    __slots__ = ("_bounds", "_child", "_counts", "_sum")

    def __init__(self, child) -> None:
        self._child = child
        self._bounds = child._upper_bounds  # ends with +Inf; prometheus_client is pinned (constraints.txt)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1  # the first bucket with amount <= its bound
        self._sum += amount

    def flush(self) -> None:
        if not any(self._counts):
            return
        counts, self._counts = self._counts, [0] * len(self._bounds)
        amount, self._sum = self._sum, 0.0
        self._child._sum.inc(amount)
        for bucket, count in zip(self._child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)


class VariantMetrics:
    """One route/variant's series, looked up once (``labels()`` cost more than the updates themselves).

    Updates are summed here in plain Python and written to the Prometheus series by ``GatewayMetrics.flush``:
    before every scrape of this process and every ``FLUSH_INTERVAL_S`` (with several workers the scrape reads
    every worker's files, so what a worker counted shows within that interval). Updating the series directly
    took a lock per value (a file write with several workers) and a Python loop over the buckets per
    observation: ~6 µs a request.
    """

    __slots__ = (
        "_counts",
        "_labels",
        "_requests",
        "added_latency",
        "completion_tokens",
        "latency",
        "prompt_tokens",
        "ttft",
    )

    def __init__(self, metrics: "GatewayMetrics", route: str, variant: str) -> None:
        self._requests, self._labels = metrics.requests, (route, variant)
        self._counts: dict[int, int] = {}
        self.latency = _PendingHistogram(metrics.latency.labels(route, variant))
        self.added_latency = _PendingHistogram(metrics.added_latency.labels(route, variant))
        self.ttft = _PendingHistogram(metrics.ttft.labels(route, variant))
        self.prompt_tokens = _PendingCounter(metrics.tokens.labels(route, variant, "prompt"))
        self.completion_tokens = _PendingCounter(metrics.tokens.labels(route, variant, "completion"))

    def count(self, status: int) -> None:
        self._counts[status] = self._counts.get(status, 0) + 1

    def flush(self) -> None:
        if self._counts:
            counts, self._counts = self._counts, {}
            for status, count in counts.items():
                self._requests.labels(*self._labels, str(status)).inc(count)
        for pending in (self.latency, self.added_latency, self.ttft, self.prompt_tokens, self.completion_tokens):
            pending.flush()


class _FlushBeforeScrape:
    """Registered first in the registry, so a scrape of this process sees every update made before it."""

    def __init__(self, metrics: "GatewayMetrics") -> None:
        self._metrics = metrics

    def describe(self) -> list:
        return []

    def collect(self) -> list:
        self._metrics.flush()
        return []


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._variants: dict[tuple[str, str], VariantMetrics] = {}  # routes and variants come from configuration
        registry.register(_FlushBeforeScrape(self))
        route_variant = ("route", "variant")
        self.requests = Counter(
            "llmops_gateway_requests", "Finished requests", (*route_variant, "status"), registry=registry
        )
        self.latency = Histogram(
            "llmops_gateway_request_duration_seconds",
            "Total request time",
            route_variant,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.added_latency = Histogram(
            "llmops_gateway_added_latency_seconds",
            "Request time spent in the gateway (total minus upstream)",
            route_variant,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "llmops_gateway_time_to_first_token_seconds",
            "Time to the first streamed content chunk",
            route_variant,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "llmops_gateway_tokens",
            "Tokens by direction (prompt, completion)",
            (*route_variant, "kind"),
            registry=registry,
        )
        self.quota_refusals = Counter(
            "llmops_gateway_quota_refusals",
            "Requests refused by a quota or budget",
            ("scope", "limit"),
            registry=registry,
        )
        self.quota_store_errors = Counter(
            "llmops_gateway_quota_store_errors", "Quota checks that could not reach Redis", ("mode",), registry=registry
        )
        self.upstream_errors = Counter(
            "llmops_gateway_upstream_errors", "Failed upstream attempts", (*route_variant, "kind"), registry=registry
        )
        self.breaker_state = Gauge(
            "llmops_gateway_circuit_breaker_state",
            "0 closed, 1 open, 2 half-open",
            route_variant,
            registry=registry,
            multiprocess_mode="max",  # several workers: each has its own breakers; show the worst
        )
        self.request_log_dropped = Counter(
            "llmops_gateway_request_log_dropped", "Request log records that could not be queued", registry=registry
        )
        self.request_log_delivered = Counter(
            "llmops_gateway_request_log_delivered", "Request records taken by the feedback service", registry=registry
        )
        self.request_log_spooled = Gauge(
            "llmops_gateway_request_log_spooled",
            "Request records on disk, waiting for the feedback service",
            registry=registry,
            multiprocess_mode="max",  # several workers share one spool directory
        )
        self.rag_retrievals = Counter(
            "llmops_gateway_rag_retrievals",
            "RAG retrievals by outcome (ok, refused: bad collection or filter, unavailable)",
            ("route", "outcome"),
            registry=registry,
        )
        self.rag_latency = Histogram(
            "llmops_gateway_rag_retrieval_duration_seconds",
            "Time to retrieve a RAG request's context",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.request_log_rejected = Counter(
            "llmops_gateway_request_log_rejected_batches",
            "Batches the feedback service refused as invalid (kept on disk)",
            registry=registry,
        )

    def for_variant(self, route: str, variant: str) -> VariantMetrics:
        found = self._variants.get((route, variant))
        if found is None:
            found = self._variants[(route, variant)] = VariantMetrics(self, route, variant)
        return found

    def flush(self) -> None:
        for variant in list(self._variants.values()):
            variant.flush()

    async def flush_periodically(self) -> None:
        """Runs for the process's life (the lifespan starts it, and flushes once more at shutdown)."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self.flush()
