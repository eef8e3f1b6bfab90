"""LoRA adapters in the MLflow model registry: which to serve, and their files.

The naming and tags are the contract the trainer registers by (``llmops_common.contracts.adapters``): a registered
model tagged ``llmops.kind=lora-adapter`` is an adapter; each of its aliases is served as ``<model>@<alias>``
(``support-bot@champion``) with the version the alias points to. Moving an alias swaps the weights behind a stable
name; deleting it retires the name. A version's ``source`` is the artifact URI of a PEFT adapter directory
(``adapter_config.json`` + weights), e.g. ``runs:/…`` or ``mlflow-artifacts:/…/adapter``.
The MLflow client blocks: call these from a worker thread.
"""

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmops_common.contracts.adapters import ADAPTER_TAG, ADAPTER_TAG_VALUE, served_name


@dataclass(frozen=True)
class RegistryAdapter:
    name: str  # the served name, model@alias
    model: str
    alias: str
    version: str
    source: str  # artifact URI of the adapter directory


class RegistryReader:
    def __init__(self, tracking_uri: str, *, timeout_s: int, max_retries: int) -> None:
        self.tracking_uri = tracking_uri
        # MLflow's defaults (120 s timeout, 7 retries with back-off) would stall a sync for many minutes while
        # the registry is down. An operator's own MLFLOW_HTTP_* settings win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
        self._sources: dict[tuple[str, str], str | None] = {}  # (model, version) -> source; versions are immutable

    def _client(self):
        from mlflow import MlflowClient  # imported on first use: it takes a while

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def read(self) -> dict[str, RegistryAdapter]:
        """Every alias of every adapter model, by served name. Raises when the registry cannot be read."""
        client = self._client()
        adapters: dict[str, RegistryAdapter] = {}
        page_token = None
        while True:
            page = client.search_registered_models(
                filter_string=f"tags.`{ADAPTER_TAG}` = '{ADAPTER_TAG_VALUE}'", max_results=100, page_token=page_token
            )
            for model in page:
                for alias, version in sorted((model.aliases or {}).items()):
                    source = self._source(client, model.name, str(version))
                    if source:
                        name = served_name(model.name, alias)
                        adapters[name] = RegistryAdapter(name, model.name, alias, str(version), source)
            page_token = page.token
            if not page_token:
                return adapters

    def _source(self, client, model: str, version: str) -> str | None:
        key = (model, version)
        if key not in self._sources:
            found = client.get_model_version(model, version)
            if found.status != "READY":
                return None  # still being registered: the next sync takes it
            self._sources[key] = found.source
        return self._sources[key]

    def download(self, adapter: RegistryAdapter, root: Path) -> Path:
        """The adapter's directory under ``root``, downloaded once per version (and per source)."""
        from mlflow.artifacts import download_artifacts

        digest = hashlib.sha256(adapter.source.encode()).hexdigest()[:12]
        dest = Path(root) / re.sub(r"[^A-Za-z0-9._-]", "_", adapter.model) / f"v{adapter.version}-{digest}"
        if (dest / "adapter_config.json").is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            local = Path(
                download_artifacts(artifact_uri=adapter.source, dst_path=str(tmp), tracking_uri=self.tracking_uri)
            )
            if not (local / "adapter_config.json").is_file():
                raise ValueError(f"{adapter.source} is not a PEFT adapter directory (no adapter_config.json)")
            shutil.rmtree(dest, ignore_errors=True)
            local.rename(dest)  # complete or absent: never a half-downloaded adapter under the final name
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest
