"""Inference settings, all from ``INFERENCE_*`` environment variables."""

import shlex
from pathlib import Path

from pydantic import Field

from llmops_common.contracts.models import BUNDLED_MODEL_NAME
from llmops_common.settings import InsecureSettingsError, ServiceSettings, require_secret, service_config
from llmops_models import prepare

DEV_ADMIN_TOKEN = "dev-inference-admin-token"
# The bundled 135M model's KV cache, set outright rather than as a share of memory (a fifth of RAM less what vLLM
# holds: 3 GiB on a 24 GiB machine): 23,000 tokens, 11 requests of the full 2,048. Measured on 2 busy CPU cores:
# vLLM's engine set-up took 2 s instead of 16 s (46 s when memory ran short), its start 12 CPU seconds less, and
# 2 GiB stay free for the rest of the platform.
BUNDLED_KV_CACHE = "1G"


class InferenceSettings(ServiceSettings):
    model_config = service_config("INFERENCE_")

    port: int = 8002
    # Bearer token of the admin API (load an adapter from a path). Outside dev mode it must be set and not the default.
    admin_token: str | None = None
    # Bearer token of the OpenAI surface (/v1/*), so nothing on the network bypasses the gateway's keys and quotas:
    # the gateway holds it as INFERENCE_SERVING_TOKEN, which route variants name in ``api_key_env``. The admin token
    # is accepted there too. Outside dev mode it must be set, unless ``open_serving`` says the surface is meant to
    # be open; in dev mode, unset leaves it open (with a warning at start).
    serving_token: str | None = None
    # Comma-separated earlier serving tokens, still accepted while callers move to the new one (SECURITY.md).
    serving_tokens_previous: str | None = None
    # True: /v1/* answers anyone who reaches the port. Only where a private network already limits the callers.
    open_serving: bool = False

    # --- the base model ---
    # Unset: the bundled SmolLM2-135M-Instruct, prepared once into ``model_cache_dir``. Else a local
    # checkpoint directory or a Hugging Face model id, passed to vLLM as is.
    model: str | None = None
    served_model_name: str | None = None  # default: the bundled model's name, else the model's last path part
    model_cache_dir: Path = Field(default_factory=prepare.default_cache_dir)
    state_dir: Path = Path("./.llmops/inference")  # vLLM's log, downloaded adapters

    # --- the vLLM server process (defaults work on 2 CPU cores; see the GPU notes in the README) ---
    vllm_host: str = "127.0.0.1"  # its /metrics is scraped here; its /v1 needs the internal API key
    vllm_port: int = 8012
    vllm_api_key: str | None = None  # unset: a random key per start, so only this service can use vLLM's /v1
    dtype: str = "auto"
    max_model_len: int = Field(default=2048, ge=16)
    # On GPU the share of GPU memory vLLM may use (0.9 is usual); on CPU the share of RAM for the KV cache. Unset,
    # the bundled model gets a fixed KV cache instead (BUNDLED_KV_CACHE).
    gpu_memory_utilization: float = Field(default=0.2, gt=0, le=1)
    tensor_parallel_size: int = Field(default=1, ge=1)
    quantization: str | None = None  # e.g. awq, gptq, fp8 (GPU)
    enforce_eager: bool = True  # no CUDA graphs / torch.compile: fast start; turn off on GPU for throughput
    enable_lora: bool = True
    max_loras: int = Field(default=4, ge=1)  # adapters in one batch
    max_lora_rank: int = Field(default=16, ge=1)
    max_cpu_loras: int | None = None  # adapters cached in host memory (vLLM default: max_loras)
    extra_args: str = ""  # appended to vLLM's command line, shell syntax
    start_timeout_s: float = 900.0  # a vLLM that is not healthy by then is restarted
    restart_backoff_s: float = 1.0  # doubles after each crash ...
    restart_backoff_max_s: float = 30.0  # ... up to this; reset after a start that stayed up a minute
    health_interval_s: float = 2.0
    health_failures_down: int = 3  # consecutive failed health checks that count vLLM as down

    # --- LoRA adapters from the MLflow registry ---
    mlflow_tracking_uri: str | None = None  # unset: no registry sync (adapters only through the admin API)
    sync_interval_s: float = Field(default=15.0, gt=0)
    registry_timeout_s: int = Field(default=10, ge=1)
    registry_max_retries: int = Field(default=1, ge=0)
    # False: the service is not ready until it has read the registry once (adapters are part of what it serves).
    # True: a registry unreachable at start-up only degrades readiness, as it does later on.
    ready_without_registry: bool = False

    # --- relaying to vLLM ---
    max_body_bytes: int = 4 * 1024 * 1024
    vllm_connect_timeout_s: float = 5.0
    vllm_read_timeout_s: float = 600.0  # longest silence between bytes (CPU queues can be long)

    def admin_token_value(self) -> str:
        return require_secret(
            self.admin_token, name="INFERENCE_ADMIN_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_ADMIN_TOKEN
        )

    def serving_tokens(self) -> tuple[str, ...]:
        """The tokens /v1/* accepts besides the admin token, the current one first; empty: the surface is open.
        Refuses, outside dev mode, a missing token (unless ``open_serving``) and short ones."""
        previous = tuple(t.strip() for t in (self.serving_tokens_previous or "").split(",") if t.strip())
        if self.open_serving and (self.serving_token or previous):
            raise InsecureSettingsError("INFERENCE_OPEN_SERVING is set with a serving token: choose one")
        if not self.serving_token:
            if previous:
                raise InsecureSettingsError("INFERENCE_SERVING_TOKENS_PREVIOUS is set without INFERENCE_SERVING_TOKEN")
            if not (self.open_serving or self.dev_mode):
                raise InsecureSettingsError(
                    "INFERENCE_SERVING_TOKEN is not set (set it and give it to the gateway; or, where only trusted "
                    "callers can reach this port, INFERENCE_OPEN_SERVING=true; or enable dev mode for local use)"
                )
            return ()
        tokens = (self.serving_token, *previous)
        if not self.dev_mode and any(len(token) < 16 for token in tokens):
            raise InsecureSettingsError("a serving token (INFERENCE_SERVING_TOKEN[S_PREVIOUS]) is under 16 characters")
        return tokens

    @property
    def uses_bundled_model(self) -> bool:
        return not self.model

    def model_source(self) -> str:
        """What vLLM loads: a local directory or a model id."""
        return self.model or str(prepare.bundled_model_dir(self.model_cache_dir))

    def vllm_dtype(self) -> str:
        # "auto" runs the bundled 135M model in float32: vLLM's bfloat16 CPU kernels on CPUs with AMX (Sapphire
        # Rapids and later) turned its greedy answer to "What is the capital of France?" into nonsense, where
        # transformers in either dtype answers "Paris"; at this size float32 costs little.
        if self.dtype == "auto" and self.uses_bundled_model:
            return "float32"
        return self.dtype

    def kv_cache_argv(self) -> list[str]:
        """The bundled model's fixed KV cache, unless GPU_MEMORY_UTILIZATION is set (then it sizes the cache, as it
        does for any other model); EXTRA_ARGS, last on the command line, may give ``--kv-cache-memory-bytes`` too."""
        if self.uses_bundled_model and "gpu_memory_utilization" not in self.model_fields_set:
            return ["--kv-cache-memory-bytes", BUNDLED_KV_CACHE]
        return []

    def served_name(self) -> str:
        if self.served_model_name:
            return self.served_model_name
        if self.uses_bundled_model:
            return BUNDLED_MODEL_NAME
        return self.model.rstrip("/").rsplit("/", 1)[-1]

    def extra_argv(self) -> list[str]:
        return shlex.split(self.extra_args)

    @property
    def vllm_url(self) -> str:
        host = "127.0.0.1" if self.vllm_host in ("0.0.0.0", "::", "") else self.vllm_host
        return f"http://{host}:{self.vllm_port}"
