"""The service's own Prometheus metrics (vLLM's stay on vLLM's port), on a registry of its own per app."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmops_common.metrics import LATENCY_BUCKETS


class InferenceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.vllm_up = Gauge(
            "llmops_inference_vllm_up", "1 while the vLLM server answers its health check", registry=registry
        )
        self.vllm_restarts = Counter(
            "llmops_inference_vllm_restarts", "vLLM servers that exited, hung or failed to start", registry=registry
        )
        self.vllm_start_seconds = Gauge(
            "llmops_inference_vllm_start_seconds", "Time the last vLLM start took to become healthy", registry=registry
        )
        self.adapters_synced = Gauge(
            "llmops_inference_adapters_synced",
            "1 when the registry was read by the last sync and every wanted adapter is loaded",
            registry=registry,
        )
        self.registry_up = Gauge(
            "llmops_inference_registry_up", "1 when the last read of the MLflow registry succeeded", registry=registry
        )
        self.last_sync = Gauge(
            "llmops_inference_adapter_last_sync_timestamp_seconds",
            "Unix time of the last complete sync",
            registry=registry,
        )
        self.syncs = Counter("llmops_inference_adapter_syncs", "Sync passes by result", ("result",), registry=registry)
        self.adapter_loads = Counter(
            "llmops_inference_adapter_loads",
            "Adapter loads and unloads by result",
            ("action", "result"),
            registry=registry,
        )
        self.adapter_loaded = Gauge(
            "llmops_inference_adapter_loaded",
            "1 per adapter loaded in vLLM now",
            ("adapter", "source", "version"),
            registry=registry,
        )
        self.requests = Counter(
            "llmops_inference_requests", "Relayed requests", ("endpoint", "model", "status"), registry=registry
        )
        self.latency = Histogram(
            "llmops_inference_request_duration_seconds",
            "Time to the end of the response",
            ("endpoint",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
