"""The trainer API's metrics: submissions and reaped jobs as they happen, jobs by state from each reaper pass."""

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from llmops_trainer.jobs.models import JobState


class JobsByState(Collector):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def collect(self):
        family = GaugeMetricFamily("llmops_trainer_jobs", "Training jobs by state", labels=("state",))
        for state in JobState:
            family.add_metric([state.value], self.counts.get(state.value, 0))
        yield family


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.submitted = Counter(
            "llmops_trainer_jobs_submitted", "Training jobs accepted", ("source",), registry=registry
        )
        self.rejected = Counter(
            "llmops_trainer_datasets_rejected", "Job submissions refused for their dataset", registry=registry
        )
        self.reaped = Counter(
            "llmops_trainer_jobs_reaped", "Running jobs whose worker was lost, by outcome", ("outcome",),
            registry=registry,
        )
        self.by_state = JobsByState()
        registry.register(self.by_state)

    def on_reaper_pass(self, outcomes: dict[str, list[str]], counts: dict[str, int]) -> None:
        for outcome, ids in outcomes.items():
            if ids:
                self.reaped.labels(outcome).inc(len(ids))
        self.by_state.counts = counts
