"""Named environments (dev, staging, prod): where each one's MLflow and gateway are.

``$LLMOPS_ENVIRONMENTS`` (default ``~/.llmops/environments.yaml``)::

    environments:
      staging: {mlflow: http://mlflow.staging.example:5000, gateway: https://llm.staging.example}
      prod:    {mlflow: http://mlflow.prod.example:5000,    gateway: https://llm.example}

A URL works wherever a name does, so no file is needed for a one-off.
"""

import os
from pathlib import Path

import yaml


def environments_path() -> Path:
    return Path(os.environ.get("LLMOPS_ENVIRONMENTS") or Path.home() / ".llmops" / "environments.yaml")


def mlflow_url(name_or_url: str) -> str:
    """An MLflow URL as given, or the named environment's; ``ValueError`` saying what is missing otherwise."""
    if "://" in name_or_url:
        return name_or_url.rstrip("/")
    path = environments_path()
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ValueError(f"{name_or_url!r} is no URL and {path} does not exist to name it") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    environment = (document.get("environments") or {}).get(name_or_url) if isinstance(document, dict) else None
    if not isinstance(environment, dict) or not environment.get("mlflow"):
        raise ValueError(f"environment {name_or_url!r} has no mlflow URL in {path}")
    return str(environment["mlflow"]).rstrip("/")
