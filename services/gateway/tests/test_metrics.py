"""The gateway's per-variant metrics are summed in process and written to Prometheus in batches: a scrape must
still show exactly what direct updates would have shown."""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmops_common.metrics import LATENCY_BUCKETS
from llmops_gateway.metrics import GatewayMetrics

OBSERVATIONS = [0.0, 0.0004, 0.0005, 0.0011, 0.25, 3.0, 1e6]  # on a bound, between bounds, beyond the last


def samples(registry: CollectorRegistry, family: str) -> dict:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        if f.name == family
        for s in f.samples
        if not s.name.endswith("_created")
    }


def test_a_scrape_sees_every_update_made_before_it_as_direct_updates_would():
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "llmops_gateway_request_duration_seconds",
        "",
        ("route", "variant"),
        buckets=LATENCY_BUCKETS,
        registry=reference_registry,
    ).labels("r", "a")
    requests = Counter("llmops_gateway_requests", "", ("route", "variant", "status"), registry=reference_registry)

    variant = metrics.for_variant("r", "a")
    for rounds in range(2):  # the second scrape adds to the first, nothing counted twice
        for amount in OBSERVATIONS:
            variant.latency.observe(amount)
            reference.observe(amount)
            variant.count(200)
            requests.labels("r", "a", "200").inc()
        variant.count(502)
        requests.labels("r", "a", "502").inc()
        variant.prompt_tokens.inc(11)
        for family in ("llmops_gateway_request_duration_seconds", "llmops_gateway_requests"):
            assert samples(registry, family) == samples(reference_registry, family), (family, rounds)
    tokens = samples(registry, "llmops_gateway_tokens")
    assert tokens[("llmops_gateway_tokens_total", (("kind", "prompt"), ("route", "r"), ("variant", "a")))] == 22


def test_flush_writes_pending_updates_without_a_scrape():
    """With several workers the scrape reads files: each worker's timer (``flush``) is what writes them."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    metrics.for_variant("r", "a").count(200)
    child = metrics.requests.labels("r", "a", "200")
    assert child._value.get() == 0
    metrics.flush()
    assert child._value.get() == 1
