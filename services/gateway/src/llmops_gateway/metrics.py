"""The gateway's Prometheus metrics, on a registry of its own per app (tests run several apps in one process)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmops_common.metrics import LATENCY_BUCKETS
from llmops_gateway.money import NANOS
from llmops_gateway.quotas.plan import Reservation

_PERIODS = {"cost_day": "day", "cost_month": "month"}


class VariantMetrics:
    """One route/variant's series, looked up once: ``labels()`` cost more than the updates themselves."""

    __slots__ = (
        "_labels",
        "_requests",
        "_statuses",
        "added_latency",
        "completion_tokens",
        "latency",
        "prompt_tokens",
        "ttft",
    )

    def __init__(self, metrics: "GatewayMetrics", route: str, variant: str) -> None:
        self._requests, self._labels = metrics.requests, (route, variant)
        self._statuses: dict[int, Counter] = {}
        self.latency = metrics.latency.labels(route, variant)
        self.added_latency = metrics.added_latency.labels(route, variant)
        self.ttft = metrics.ttft.labels(route, variant)
        self.prompt_tokens = metrics.tokens.labels(route, variant, "prompt")
        self.completion_tokens = metrics.tokens.labels(route, variant, "completion")

    def count(self, status: int) -> None:
        child = self._statuses.get(status)
        if child is None:
            child = self._statuses[status] = self._requests.labels(*self._labels, str(status))
        child.inc()


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._variants: dict[tuple[str, str], VariantMetrics] = {}  # routes and variants come from configuration
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
        self.request_log_lost = Counter(
            "llmops_gateway_request_log_lost",
            "Request records neither delivered nor kept on disk (the spool could not be written: disk full)",
            registry=registry,
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
        self.prompt_errors = Counter(
            "llmops_gateway_prompt_errors",
            "Requests refused (503) because their route's registered prompt did not resolve, by reason (not_found: "
            "the alias or version is gone; invalid: its template; registry_unavailable: MLflow, with no copy cached)",
            ("route", "reason"),
            registry=registry,
        )
        self.request_log_rejected = Counter(
            "llmops_gateway_request_log_rejected_batches",
            "Batches the feedback service refused as invalid (kept on disk)",
            registry=registry,
        )

        self.ratings_spooled = Gauge(
            "llmops_gateway_ratings_spooled",
            "Client ratings on disk, waiting for the feedback service",
            registry=registry,
            multiprocess_mode="max",
        )
        self.ratings_delivered = Counter(
            "llmops_gateway_ratings_delivered", "Spooled ratings taken by the feedback service", registry=registry
        )
        self.ratings_rejected = Counter(
            "llmops_gateway_ratings_rejected",
            "Spooled ratings the feedback service refused as invalid (kept on disk)",
            registry=registry,
        )

        self.spend = Counter(
            "llmops_gateway_spend",
            "Spend in the gateway's currency (GATEWAY_CURRENCY), at each variant's price",
            ("route", "variant", "team"),
            registry=registry,
        )
        self.budget_used = Gauge(
            "llmops_gateway_budget_used_ratio",
            "Share of a budget used (reserved and spent) in its current period, as of its latest request",
            ("scope", "owner", "period"),
            registry=registry,
            multiprocess_mode="max",
        )
        self.budget_alert_share = Gauge(
            "llmops_gateway_budget_alert_share",
            "The budget share that sets off an alert (GATEWAY_BUDGET_ALERT_SHARE), for the alert rule to divide by",
            registry=registry,
            multiprocess_mode="max",
        )
        self._spend_children: dict[tuple[str, str, str], Counter] = {}

    def add_spend(self, route: str, variant: str, team: str | None, nanos: int) -> None:
        labels = (route, variant, team or "")
        child = self._spend_children.get(labels)
        if child is None:
            if len(self._spend_children) > 10_000:
                self._spend_children.clear()
            child = self._spend_children[labels] = self.spend.labels(*labels)
        child.inc(nanos / NANOS)

    def observe_budgets(self, reservation: Reservation) -> None:
        """Each budget's used share, from what the reservation saw left (for the alert rule and the dashboard)."""
        plan = reservation.plan
        if plan is None:
            return
        for i, _ in plan.cost_counter_bases:
            scope, kind, limit = plan.limits[i]
            used = 1 - max(0, reservation.remaining[i]) / limit
            self.budget_used.labels(scope, plan.owners[i], _PERIODS[kind]).set(used)

    def for_variant(self, route: str, variant: str) -> VariantMetrics:
        found = self._variants.get((route, variant))
        if found is None:
            found = self._variants[(route, variant)] = VariantMetrics(self, route, variant)
        return found
