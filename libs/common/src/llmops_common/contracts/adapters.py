"""LoRA adapters in the MLflow model registry: the trainer registers them, the inference service serves them.

A registered model tagged ``ADAPTER_TAG=ADAPTER_TAG_VALUE`` is an adapter model; each of its aliases is served as
``<model>@<alias>`` (``support-bot@champion``) with the version the alias points to. A version's ``source`` is the
artifact URI of a PEFT adapter directory.
"""

ADAPTER_TAG = "llmops.kind"
ADAPTER_TAG_VALUE = "lora-adapter"
SEPARATOR = "@"  # never in a registered model's name, so a served name splits back unambiguously


def served_name(model: str, alias: str) -> str:
    """The name clients ask for: ``<model>@<alias>``."""
    return f"{model}{SEPARATOR}{alias}"

