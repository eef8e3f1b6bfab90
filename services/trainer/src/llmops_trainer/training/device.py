"""Where and how a job trains: CPU in fp32; CUDA in bf16 (fp16 where bf16 is missing); QLoRA (4-bit base weights
through bitsandbytes) on CUDA only.

The CUDA and QLoRA paths are guarded and cannot be exercised on the CPU-only machines the test suite runs on.
"""

import importlib.util
from dataclasses import dataclass


class UnsupportedSetup(RuntimeError):
    """The job asks for something this worker cannot do: failing it is final, a retry would fail the same way."""


@dataclass(frozen=True)
class DevicePlan:
    device: str  # cpu | cuda
    dtype: str  # float32 | bfloat16 | float16
    quantization: str  # none | 4bit
    threads: int = 0  # CPU threads; 0: torch's default

    def trainer_args(self) -> dict:
        # fp32 on CPU: bf16 autocast is slow on CPUs without AMX and gains nothing for small adapters.
        return {"use_cpu": self.device == "cpu", "bf16": self.dtype == "bfloat16", "fp16": self.dtype == "float16"}


def plan(device_setting: str, quantization: str, *, threads: int = 0) -> DevicePlan:
    import torch

    cuda = torch.cuda.is_available()
    if device_setting == "cuda" and not cuda:
        raise UnsupportedSetup("TRAINER_DEVICE is cuda but this worker sees no CUDA device")
    device = "cuda" if cuda and device_setting in ("auto", "cuda") else "cpu"
    if quantization == "4bit":
        if device != "cuda":
            raise UnsupportedSetup("QLoRA (quantization 4bit) needs a CUDA GPU; this worker trains on CPU")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UnsupportedSetup("QLoRA needs bitsandbytes on the worker: pip install 'llmops-trainer[qlora]'")
    if device == "cpu":
        dtype = "float32"
    else:
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return DevicePlan(device=device, dtype=dtype, quantization=quantization, threads=threads)


def load_base_model(source: str, device_plan: DevicePlan):
    import torch
    from transformers import AutoModelForCausalLM

    if device_plan.threads:
        torch.set_num_threads(device_plan.threads)
    dtype = getattr(torch, device_plan.dtype)
    if device_plan.quantization != "4bit":
        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=dtype, quantization_config=quantization, device_map={"": 0}
    )
    # Casts norms to fp32 and enables input gradients, as 4-bit base weights need for stable adapter training.
    return prepare_model_for_kbit_training(model)
