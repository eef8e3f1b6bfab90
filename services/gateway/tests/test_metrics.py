"""The gateway's per-variant metrics: one series per route, variant and status, read back by a scrape."""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmops_gateway.metrics import GatewayMetrics


def samples(registry: CollectorRegistry, family: str) -> dict:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        if f.name == family
        for s in f.samples
        if not s.name.endswith("_created")
    }


def test_counts_by_status_and_latency_buckets_show_in_a_scrape():
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    variant = metrics.for_variant("r", "a")
    assert metrics.for_variant("r", "a") is variant  # looked up once
    for status in (200, 200, 502):
        variant.count(status)
    for seconds in (0.0004, 0.25, 3.0):
        variant.latency.observe(seconds)
    variant.prompt_tokens.inc(11)
    requests = samples(registry, "llmops_gateway_requests")
    assert requests[("llmops_gateway_requests_total", (("route", "r"), ("status", "200"), ("variant", "a")))] == 2
    assert requests[("llmops_gateway_requests_total", (("route", "r"), ("status", "502"), ("variant", "a")))] == 1
    latency = samples(registry, "llmops_gateway_request_duration_seconds")
    labels = (("route", "r"), ("variant", "a"))
    assert latency[("llmops_gateway_request_duration_seconds_count", labels)] == 3
    assert abs(latency[("llmops_gateway_request_duration_seconds_sum", labels)] - 3.2504) < 1e-9
    assert latency[("llmops_gateway_request_duration_seconds_bucket", (("le", "0.5"), *labels))] == 2
    tokens = samples(registry, "llmops_gateway_tokens")
    assert tokens[("llmops_gateway_tokens_total", (("kind", "prompt"), ("route", "r"), ("variant", "a")))] == 11
