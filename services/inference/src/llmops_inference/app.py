"""The inference service's app factory: ``uvicorn llmops_inference.app:create_app --factory``."""

import logging
import secrets
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from llmops_common import tracing
from llmops_common.app import install_common
from llmops_common.http import make_http_session
from llmops_common.logging import configure_logging
from llmops_inference.adapters.registry import RegistryReader
from llmops_inference.adapters.service import AdapterManager
from llmops_inference.adapters.views import router as adapters_router
from llmops_inference.engine.client import VllmClient
from llmops_inference.engine.supervisor import VllmSupervisor
from llmops_inference.engine.views import router as engine_router
from llmops_inference.metrics import InferenceMetrics
from llmops_inference.serving.views import router as serving_router
from llmops_inference.settings import InferenceSettings
from llmops_inference.state import InferenceState

logger = logging.getLogger(__name__)
OPEN_WARNING = (
    "the OpenAI surface (/v1/*) is open: anyone who reaches this port can generate text without the gateway's keys "
    "and quotas (set INFERENCE_SERVING_TOKEN to close it)"
)


def create_app(settings: InferenceSettings | None = None) -> FastAPI:
    settings = settings or InferenceSettings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    tracing.configure_tracing("llmops-inference")  # only with an OTLP endpoint in the environment
    # Refuse to start with a missing or default admin token outside dev mode, before starting anything.
    admin_token = settings.admin_token_value()
    serving_tokens = settings.serving_tokens()  # refuses an unset serving token outside dev mode, unless opted out
    if settings.dev_mode:
        logger.warning("dev mode: development secrets are accepted; never run like this in production")
    if not serving_tokens:
        logger.warning(OPEN_WARNING)
    registry = CollectorRegistry()
    metrics = InferenceMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state_dir = Path(settings.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        http = make_http_session(
            connect_timeout_s=settings.vllm_connect_timeout_s, read_timeout_s=settings.vllm_read_timeout_s
        )
        # vLLM's /v1 (completions, adapter loading) answers only this key; unset, a fresh one per start.
        api_key = settings.vllm_api_key or secrets.token_urlsafe(32)
        vllm = VllmClient(http, base_url=settings.vllm_url, api_key=api_key)
        engine = VllmSupervisor(settings, client=vllm, api_key=api_key, metrics=metrics)
        reader = None
        if settings.mlflow_tracking_uri:
            reader = RegistryReader(
                settings.mlflow_tracking_uri,
                timeout_s=settings.registry_timeout_s,
                max_retries=settings.registry_max_retries,
            )
        adapters = AdapterManager(
            engine=engine,
            client=vllm,
            reader=reader,
            download_root=state_dir / "adapters",
            metrics=metrics,
            interval_s=settings.sync_interval_s,
            ready_without_registry=settings.ready_without_registry,
        )
        engine.on_up = adapters.wake  # a fresh vLLM has no adapters: sync at once
        app.state.inference = InferenceState(
            settings=settings,
            admin_token=admin_token,
            serving_tokens=serving_tokens,
            base_model=settings.served_name(),
            http=http,
            vllm=vllm,
            engine=engine,
            adapters=adapters,
            metrics=metrics,
        )
        engine.start()
        adapters.start()
        logger.info("inference service started", extra={"model": settings.model_source(), "vllm": settings.vllm_url})
        try:
            yield
        finally:
            await adapters.stop()
            await engine.stop()
            await http.close()

    app = FastAPI(title="LLMOps inference", version="0.1.0", lifespan=lifespan)

    async def vllm_ready() -> None:
        engine = app.state.inference.engine
        if not engine.up:
            last = f" (last exit: {engine.last_exit})" if engine.last_exit else ""
            raise RuntimeError(f"vLLM is {engine.state.value}{last}")

    async def adapters_ready() -> None:
        app.state.inference.adapters.check_synced()

    async def registry_ok() -> None:
        app.state.inference.adapters.check_registry()

    async def adapter_loads_ok() -> None:
        app.state.inference.adapters.check_loads()

    # Not ready until vLLM answers and the adapters are synced onto it. Afterwards an unreachable registry or an
    # adapter that fails to load only degrades the service: it keeps serving the base model and what is loaded.
    install_common(
        app,
        registry=registry,
        readiness={"vllm": vllm_ready, "adapters": adapters_ready},
        degraded_by={"registry": registry_ok, "adapter_loads": adapter_loads_ok},
    )
    app.include_router(serving_router)
    app.include_router(adapters_router)
    app.include_router(engine_router)
    return app
