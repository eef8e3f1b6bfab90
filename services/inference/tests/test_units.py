"""Settings and the vLLM command line, without starting vLLM."""

import pytest

from llmops_common.settings import InsecureSettingsError
from llmops_inference.app import create_app
from llmops_inference.engine.command import vllm_argv, vllm_env
from llmops_inference.settings import DEV_ADMIN_TOKEN, InferenceSettings
from llmops_models import prepare


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize("token", [None, DEV_ADMIN_TOKEN, "short"])
def test_no_default_or_weak_admin_token_outside_dev_mode(token):
    with pytest.raises(InsecureSettingsError):
        create_app(InferenceSettings(admin_token=token, dev_mode=False))


def test_cpu_defaults_work_on_two_cores():
    argv = vllm_argv(InferenceSettings())
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(argv, "--model") == str(prepare.bundled_model_dir())
    assert _flag(argv, "--served-model-name") == "smollm2-135m-instruct"
    assert _flag(argv, "--gpu-memory-utilization") == "0.2" and _flag(argv, "--max-model-len") == "2048"
    assert "--enforce-eager" in argv and "--enable-lora" in argv and _flag(argv, "--max-lora-rank") == "16"
    assert "--quantization" not in argv
    assert _flag(argv, "--dtype") == "float32"  # the bundled model: bfloat16 on AMX CPUs answered nonsense


def test_gpu_settings_reach_the_command_line(monkeypatch):
    monkeypatch.setenv("INFERENCE_MODEL", "Qwen/Qwen2.5-7B-Instruct-AWQ")
    monkeypatch.setenv("INFERENCE_TENSOR_PARALLEL_SIZE", "2")
    monkeypatch.setenv("INFERENCE_GPU_MEMORY_UTILIZATION", "0.9")
    monkeypatch.setenv("INFERENCE_QUANTIZATION", "awq")
    monkeypatch.setenv("INFERENCE_ENFORCE_EAGER", "false")
    monkeypatch.setenv("INFERENCE_MAX_LORAS", "8")
    monkeypatch.setenv("INFERENCE_EXTRA_ARGS", "--max-num-seqs 64 --kv-cache-dtype fp8")
    settings = InferenceSettings()
    argv = vllm_argv(settings)
    assert _flag(argv, "--model") == "Qwen/Qwen2.5-7B-Instruct-AWQ"
    assert settings.served_name() == "Qwen2.5-7B-Instruct-AWQ"
    assert _flag(argv, "--tensor-parallel-size") == "2" and _flag(argv, "--quantization") == "awq"
    assert _flag(argv, "--gpu-memory-utilization") == "0.9" and _flag(argv, "--max-loras") == "8"
    assert "--enforce-eager" not in argv and argv[-4:] == ["--max-num-seqs", "64", "--kv-cache-dtype", "fp8"]
    assert _flag(argv, "--dtype") == "auto"  # any other model: vLLM's choice, unless set


def test_vllm_environment_allows_runtime_lora_and_keeps_our_secrets_out(monkeypatch):
    monkeypatch.setenv("INFERENCE_ADMIN_TOKEN", "a-secret-that-vllm-must-not-see")
    env = vllm_env(InferenceSettings(), "internal-key")
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and env["VLLM_API_KEY"] == "internal-key"
    assert not any(name.startswith("INFERENCE_") for name in env)
