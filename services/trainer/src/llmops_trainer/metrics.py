"""The trainer API's metrics: submissions and reaped jobs as they happen; jobs by state, run durations and the
loss of recent jobs from the job table (see ``jobs.stats`` for why from there).

Several API replicas report the same table-derived numbers: aggregate them with ``max``, not ``sum``.
"""

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from llmops_trainer.jobs.stats import DURATION_BUCKETS, JobStats

REAP_OUTCOMES = ("requeued", "failed", "cancelled")


class JobsCollector(Collector):
    """Yields the latest ``JobStats``; nothing before the first read, so that a restarting API never reports a
    drop to zero that Prometheus would take for a counter reset."""

    def __init__(self) -> None:
        self.stats: JobStats | None = None

    def collect(self):
        stats = self.stats
        if stats is None:
            return
        jobs = GaugeMetricFamily("llmops_trainer_jobs", "Training jobs by state", labels=("state",))
        for state, count in stats.counts.items():
            jobs.add_metric([state], count)
        yield jobs

        durations = HistogramMetricFamily(
            "llmops_trainer_job_duration_seconds",
            "Run time of finished jobs' last attempt, by final state (its _count is the number of such jobs)",
            labels=("state",),
        )
        for state, histogram in stats.durations.items():
            buckets = [(_le(bound), n) for bound, n in zip(DURATION_BUCKETS, histogram.le, strict=True)]
            durations.add_metric([state], [*buckets, ("+Inf", histogram.count)], histogram.total_s)
        yield durations

        per_job = ("job_id", "model_name", "state")
        loss = GaugeMetricFamily("llmops_trainer_job_loss", "Latest training loss of recent jobs", labels=per_job)
        eval_loss = GaugeMetricFamily(
            "llmops_trainer_job_eval_loss", "Evaluation loss of recent jobs (at the end of training)", labels=per_job
        )
        progress = GaugeMetricFamily(
            "llmops_trainer_job_progress", "Share of a recent job's training steps done (0 to 1)", labels=per_job
        )
        for job in stats.recent:
            labels = [job.id, job.model_name, job.state]
            if job.loss is not None:
                loss.add_metric(labels, job.loss)
            if job.eval_loss is not None:
                eval_loss.add_metric(labels, job.eval_loss)
            if job.total_steps:
                progress.add_metric(labels, min(1.0, job.step / job.total_steps))
        yield from (loss, eval_loss, progress)


def _le(bound: float) -> str:
    return str(float(bound))  # "30.0", as prometheus_client writes its own buckets


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.submitted = Counter(
            "llmops_trainer_jobs_submitted", "Training jobs accepted", ("source",), registry=registry
        )
        self.rejected = Counter(
            "llmops_trainer_datasets_rejected", "Job submissions refused for their dataset", registry=registry
        )
        self.reaped = Counter(
            "llmops_trainer_jobs_reaped",
            "Running jobs whose worker was lost, by outcome",
            ("outcome",),
            registry=registry,
        )
        for outcome in REAP_OUTCOMES:  # at zero from the start: a first lost worker shows as an increase
            self.reaped.labels(outcome)
        self.jobs = JobsCollector()
        registry.register(self.jobs)

    def on_reaper_pass(self, outcomes: dict[str, list[str]]) -> None:
        for outcome, ids in outcomes.items():
            if ids:
                self.reaped.labels(outcome).inc(len(ids))

    def on_stats(self, stats: JobStats) -> None:
        self.jobs.stats = stats
