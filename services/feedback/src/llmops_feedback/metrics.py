"""The feedback service's metrics: counters as events happen, quality gauges from a periodic summary."""

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from llmops_feedback.quality.schemas import QualitySummary


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
        self.quality = QualityCollector()
        registry.register(self.quality)
