"""The feedback service's metrics: counters as events happen, quality gauges from a periodic summary."""

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from llmops_feedback.quality.schemas import QualitySummary

if TYPE_CHECKING:
    from llmops_feedback.ratings.pending import Attached
    from llmops_feedback.ratings.service import Rated


class QualityCollector(Collector):
    """Yields the latest quality summary as gauges; variants that left the window simply disappear."""

    def __init__(self) -> None:
        self.summary: QualitySummary | None = None

    def collect(self):
        labels = ("route", "variant")
        families = {
            "requests": GaugeMetricFamily(
                "llmops_feedback_window_requests", "Requests in the quality window", labels=labels
            ),
            "rated": GaugeMetricFamily(
                "llmops_feedback_window_rated", "Rated requests in the quality window", labels=labels
            ),
            "up_rate": GaugeMetricFamily(
                "llmops_feedback_thumbs_up_rate", "Thumbs-up share of rated requests", labels=labels
            ),
            "up_rate_low": GaugeMetricFamily(
                "llmops_feedback_thumbs_up_rate_lower", "Wilson 95% lower bound of the thumbs-up rate", labels=labels
            ),
            "up_rate_high": GaugeMetricFamily(
                "llmops_feedback_thumbs_up_rate_upper", "Wilson 95% upper bound of the thumbs-up rate", labels=labels
            ),
        }
        for quality in self.summary.variants if self.summary else ():
            for field, family in families.items():
                value = getattr(quality, field)
                if value is not None:
                    family.add_metric([quality.route, quality.variant], value)
        yield from families.values()


class ExperimentCollector(Collector):
    """The running experiments as the controller last saw them: share, per-arm counts, and the evidence its
    decision rule read (the always-valid difference with its interval and p-value, the sample-ratio p-value)."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple] = {}  # experiment id -> (route, share, {arm: ArmStats}, the decision's evidence)

    def update(self, seen: dict[str, tuple]) -> None:
        self.seen = seen  # replaced whole each pass: concluded experiments disappear

    def collect(self):
        share = GaugeMetricFamily(
            "llmops_experiment_challenger_share", "The challenger's share of the route", labels=("experiment", "route")
        )
        arm_labels = ("experiment", "route", "arm")
        families = {
            "exposures": GaugeMetricFamily("llmops_experiment_exposures", "Requests per arm", labels=arm_labels),
            "ratings": GaugeMetricFamily("llmops_experiment_ratings", "Rated requests per arm", labels=arm_labels),
            "thumbs_up": GaugeMetricFamily("llmops_experiment_thumbs_up", "Thumbs up per arm", labels=arm_labels),
            "errors": GaugeMetricFamily("llmops_experiment_errors", "5xx answers per arm", labels=arm_labels),
        }
        rate = GaugeMetricFamily("llmops_experiment_thumbs_up_rate", "Thumbs-up share per arm", labels=arm_labels)
        labels = ("experiment", "route")
        evidence_families = {
            "difference": GaugeMetricFamily(
                "llmops_experiment_difference", "Challenger minus champion on the primary metric", labels=labels
            ),
            "lower": GaugeMetricFamily(
                "llmops_experiment_difference_lower", "The difference's always-valid interval, low end", labels=labels
            ),
            "upper": GaugeMetricFamily(
                "llmops_experiment_difference_upper", "The difference's always-valid interval, high end", labels=labels
            ),
            "p_value": GaugeMetricFamily(
                "llmops_experiment_p_value", "The difference's always-valid p-value at this look", labels=labels
            ),
        }
        srm = GaugeMetricFamily("llmops_experiment_srm_p_value", "Sample-ratio mismatch p-value", labels=labels)
        for experiment, (route, challenger_share, arms, evidence) in self.seen.items():
            share.add_metric([experiment, route], challenger_share)
            for arm, stats in arms.items():
                for field, family in families.items():
                    family.add_metric([experiment, route, arm], getattr(stats, field))
                if stats.ratings:
                    rate.add_metric([experiment, route, arm], stats.thumbs_up / stats.ratings)
            difference = (evidence.get("readout") or {}).get("difference")  # None until both arms have outcomes
            for field, family in evidence_families.items() if difference else ():
                family.add_metric([experiment, route], difference[field])
            if (srm_p := (evidence.get("srm") or {}).get("p_value")) is not None:
                srm.add_metric([experiment, route], srm_p)
        yield share
        yield from families.values()
        yield rate
        yield from evidence_families.values()
        yield srm


class FeedbackMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "llmops_feedback_records_ingested", "Request records stored", ("route", "variant"), registry=registry
        )
        self.duplicates = Counter(
            "llmops_feedback_records_duplicate", "Request records delivered again and ignored", registry=registry
        )
        self.ratings = Counter(
            "llmops_feedback_ratings", "Ratings received", ("route", "variant", "rating"), registry=registry
        )
        self.pending = Counter(
            "llmops_feedback_pending_ratings", "Key ratings accepted before their request's record", registry=registry
        )
        self.pending_discarded = Counter(
            "llmops_feedback_pending_ratings_discarded",
            "Key ratings never attached: other_key (the request is another key's, or was made without one), "
            "expired (its record did not arrive within the pending TTL)",
            ("reason",),
            registry=registry,
        )
        self.pending_waiting = Gauge(
            "llmops_feedback_pending_ratings_waiting",
            "Key ratings waiting for their request's record",
            registry=registry,
        )
        self.rating_duplicates = Counter(
            "llmops_feedback_ratings_duplicate",
            "Ratings delivered again (same idempotency key) and not stored again",
            registry=registry,
        )
        self.quality = QualityCollector()
        registry.register(self.quality)
        self.experiment_decisions = Counter(
            "llmops_experiment_decisions", "Experiment decisions taken", ("route", "action"), registry=registry
        )
        self.experiments = ExperimentCollector()
        registry.register(self.experiments)

    def count_attached(self, attached: "Attached | None") -> None:
        if attached is None:
            return
        for stored in attached.ratings:
            self.ratings.labels(stored.route, stored.variant, stored.public.rating).inc()
        for reason, n in attached.discarded.items():
            self.pending_discarded.labels(reason).inc(n)

    def count_rated(self, outcome: "Rated") -> None:
        if outcome.new:
            self.ratings.labels(outcome.stored.route, outcome.stored.variant, outcome.stored.public.rating).inc()
        if outcome.duplicate:
            self.rating_duplicates.inc()
        if outcome.held:
            self.pending.inc()
        if outcome.discarded:
            self.pending_discarded.labels(outcome.discarded).inc()
        self.count_attached(outcome.attached)
