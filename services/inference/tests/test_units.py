"""Settings and the vLLM command line, without starting vLLM."""

import pytest

from llmops_common.settings import InsecureSettingsError
from llmops_inference.app import OPEN_WARNING, create_app
from llmops_inference.engine.command import vllm_argv, vllm_env
from llmops_inference.settings import DEV_ADMIN_TOKEN, InferenceSettings
from llmops_models import prepare


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize("token", [None, DEV_ADMIN_TOKEN, "short"])
def test_no_default_or_weak_admin_token_outside_dev_mode(token):
    with pytest.raises(InsecureSettingsError):
        create_app(InferenceSettings(admin_token=token, dev_mode=False))


STRONG = "s" * 24


@pytest.mark.parametrize(
    "settings",
    [
        {},  # no serving token: /v1/* would be open to anyone who reaches the port
        {"serving_token": "short"},
        {"serving_token": STRONG, "serving_tokens_previous": f"{STRONG}x,short"},
        {"serving_tokens_previous": STRONG},  # an earlier token without a current one
        {"serving_token": STRONG, "open_serving": True},  # open and closed at once: which was meant?
    ],
)
def test_no_missing_or_weak_serving_token_outside_dev_mode(settings):
    with pytest.raises(InsecureSettingsError):
        create_app(InferenceSettings(admin_token="a" * 24, dev_mode=False, **settings))


def test_an_open_surface_is_explicit_or_dev_mode_and_warned_about_once(capsys):
    # configure_logging puts its own handler on the root logger, writing to the stderr of the moment: read that.
    for settings in ({"open_serving": True, "dev_mode": False}, {"dev_mode": True}):
        create_app(InferenceSettings(admin_token="a" * 24, log_json=False, **settings))
        assert capsys.readouterr().err.count(OPEN_WARNING) == 1, settings
    create_app(InferenceSettings(admin_token="a" * 24, serving_token=STRONG, log_json=False, dev_mode=False))
    assert OPEN_WARNING not in capsys.readouterr().err


def test_cpu_defaults_work_on_two_cores():
    argv = vllm_argv(InferenceSettings())
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(argv, "--model") == str(prepare.bundled_model_dir())
    assert _flag(argv, "--served-model-name") == "smollm2-135m-instruct"
    assert _flag(argv, "--gpu-memory-utilization") == "0.2" and _flag(argv, "--max-model-len") == "2048"
    assert "--enforce-eager" in argv and "--enable-lora" in argv and _flag(argv, "--max-lora-rank") == "16"
    assert "--quantization" not in argv
    assert _flag(argv, "--dtype") == "float32"  # the bundled model: bfloat16 on AMX CPUs answered nonsense
    assert _flag(argv, "--kv-cache-memory-bytes") == "1G"  # the bundled model: a fixed cache, not 0.2 of RAM


def test_a_memory_share_that_is_set_sizes_the_bundled_models_kv_cache(monkeypatch):
    monkeypatch.setenv("INFERENCE_GPU_MEMORY_UTILIZATION", "0.3")
    argv = vllm_argv(InferenceSettings())
    assert _flag(argv, "--gpu-memory-utilization") == "0.3" and "--kv-cache-memory-bytes" not in argv


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
    assert "--kv-cache-memory-bytes" not in argv


def test_vllm_environment_allows_runtime_lora_and_keeps_our_secrets_out(monkeypatch):
    monkeypatch.setenv("INFERENCE_ADMIN_TOKEN", "a-secret-that-vllm-must-not-see")
    env = vllm_env(InferenceSettings(), "internal-key")
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and env["VLLM_API_KEY"] == "internal-key"
    assert not any(name.startswith("INFERENCE_") for name in env)


def test_the_cpu_lora_fix_is_installed_for_the_vllm_it_was_written_for():
    """The fix patches vLLM internals: another vLLM version must fail here and get the fix re-checked."""
    import importlib.metadata

    import vllm

    from llmops_inference.engine import lora_fix

    assert vllm.__version__ == lora_fix.FIXED_VERSION
    plugins = {e.name: e.value for e in importlib.metadata.entry_points(group="vllm.general_plugins")}
    assert plugins["llmops_cpu_lora_fix"] == "llmops_inference.engine.lora_fix:register"


def test_tokens_without_an_adapter_get_nothing_from_the_expand_op():
    import torch
    from vllm.lora.ops.torch_ops import lora_ops

    from llmops_inference.engine.lora_fix import mask_tokens_without_lora

    torch.manual_seed(0)
    tokens, rank, out, slots = 5, 4, 6, 2
    inputs, weights = torch.randn(tokens, rank), torch.randn(slots, 1, out, rank)
    indices = torch.tensor([0, -1, 1, -1, 0])
    base = torch.randn(tokens, out)
    unpatched, fixed = base.clone(), base.clone()
    original = lora_ops.bgmv_expand  # this process never loads vLLM's plugins
    original(inputs, weights, unpatched, indices, True)
    mask_tokens_without_lora(original)(inputs, weights, fixed, indices, True)
    no_lora = indices < 0
    assert not torch.allclose(unpatched[no_lora], base[no_lora])  # the bug: index -1 reads the last slot
    assert torch.equal(fixed[no_lora], base[no_lora])  # fixed: exactly the base output
    assert torch.allclose(fixed[~no_lora], unpatched[~no_lora])  # adapter tokens as before
