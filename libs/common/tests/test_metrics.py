"""/metrics with several worker processes: every worker's counts plus the app's scrape-time collectors."""

import subprocess
import sys
import textwrap

# Run in fresh interpreters: prometheus_client picks its value store when first imported.
WORKER = textwrap.dedent(
    """
    from prometheus_client import CollectorRegistry, Counter
    registry = CollectorRegistry()
    Counter("llmops_test_requests", "requests", registry=registry).inc({n})
    """
)
SCRAPE = textwrap.dedent(
    """
    from prometheus_client import CollectorRegistry, Counter, generate_latest
    from prometheus_client.core import GaugeMetricFamily
    from llmops_common.metrics import exposed_registry

    class FromDatabase:
        def collect(self):
            yield GaugeMetricFamily("llmops_test_jobs", "jobs counted at scrape time", value=7)

    registry = CollectorRegistry()
    Counter("llmops_test_requests", "requests", registry=registry)
    registry.register(FromDatabase())
    print(generate_latest(exposed_registry(registry)).decode())
    """
)


def run(code: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def test_multiprocess_exposition_merges_workers_and_keeps_custom_collectors(tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run(WORKER.format(n=2), env)
    run(WORKER.format(n=3), env)
    text = run(SCRAPE, env)
    assert "llmops_test_requests_total 5.0" in text  # both workers' counts, added up
    assert "llmops_test_jobs 7.0" in text
