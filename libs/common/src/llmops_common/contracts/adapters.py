"""LoRA adapters in the MLflow model registry: the trainer registers them, the inference service serves them.

A registered model tagged ``ADAPTER_TAG=ADAPTER_TAG_VALUE`` is an adapter model; each of its aliases is served as
``<model>@<alias>`` (``support-bot@champion``) with the version the alias points to. A version's ``source`` is the
artifact URI of a PEFT adapter directory.
"""

ADAPTER_TAG = "llmops.kind"
ADAPTER_TAG_VALUE = "lora-adapter"
SEPARATOR = "@"  # never in a registered model's name, so a served name splits back unambiguously
# Set by the inference service on every answer from a registry adapter: the registry version that answered
# (``support-bot@challenger`` -> ``7``). The gateway logs it with the request, so a moved alias shows at once.
MODEL_VERSION_HEADER = "x-llmops-model-version"


def served_name(model: str, alias: str) -> str:
    """The name clients ask for: ``<model>@<alias>``."""
    return f"{model}{SEPARATOR}{alias}"


def split_served_name(name: str) -> tuple[str, str] | None:
    """``(model, alias)`` of a served adapter name, or None for any other model name (the base model)."""
    model, separator, alias = name.partition(SEPARATOR)
    return (model, alias) if separator and model and alias else None
