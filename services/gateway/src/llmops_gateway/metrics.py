"""The gateway's Prometheus metrics, on a registry of its own per app (tests run several apps in one process)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmops_common.metrics import LATENCY_BUCKETS


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
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
