"""Admin API for adapters: list them with the sync state, load one from a local path, unload it."""

from pathlib import Path

from fastapi import APIRouter, Depends, Response

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_inference.adapters.schemas import AdapterList, AdapterLoad, AdapterPublic, SyncPublic
from llmops_inference.adapters.service import Adapter, AdapterManager
from llmops_inference.deps import StateDep, require_admin
from llmops_inference.engine.client import AdapterLoadError, VllmUnavailable

router = APIRouter(
    prefix="/admin/adapters", tags=["admin"], dependencies=[Depends(require_admin)], responses=ERROR_RESPONSES
)  # every error in the documented body


def _public(adapter: Adapter, manager: AdapterManager) -> AdapterPublic:
    entry = adapter.entry
    return AdapterPublic(
        name=adapter.name,
        source=adapter.source,
        loaded=manager.is_loaded(adapter.name),
        path=str(adapter.path) if adapter.path else None,
        error=adapter.error,
        model=entry.model if entry else None,
        alias=entry.alias if entry else None,
        version=adapter.version,
    )


@router.get("")
async def list_adapters(state: StateDep) -> AdapterList:
    manager = state.adapters
    return AdapterList(
        data=[_public(a, manager) for a in sorted(manager.wanted.values(), key=lambda a: a.name)],
        sync=SyncPublic(
            registry=state.settings.mlflow_tracking_uri,
            registry_error=manager.registry_error,
            registry_read_at=manager.registry_read_at,
            synced=manager.synced,
            interval_s=manager.interval_s,
        ),
    )


@router.post("", status_code=201)
async def load_adapter(body: AdapterLoad, state: StateDep) -> AdapterPublic:
    """Loads the PEFT adapter at ``path`` under ``name`` (replacing an admin adapter of that name)."""
    if body.name == state.base_model:
        raise APIError(409, f"'{body.name}' is the base model's name", code="name_taken")
    path = Path(body.path)
    if not path.is_absolute() or not (path / "adapter_config.json").is_file():
        raise APIError(
            400,
            f"{body.path} is not an absolute path to a PEFT adapter directory (one with adapter_config.json)",
            code="invalid_adapter_path",
        )
    try:
        adapter = await state.adapters.load_local(body.name, path)
    except VllmUnavailable:
        raise APIError(
            503, "the model server is starting or restarting", code="vllm_unavailable", headers={"retry-after": "5"}
        ) from None
    except AdapterLoadError as exc:
        raise APIError(400, f"vLLM refused the adapter: {exc}", code="adapter_load_failed") from None
    return _public(adapter, state.adapters)


@router.delete("/{name}", status_code=204)
async def unload_adapter(name: str, state: StateDep) -> Response:
    adapter = state.adapters.wanted.get(name)
    if adapter is None:
        raise APIError(404, f"no adapter named '{name}'", code="adapter_not_found")
    if adapter.source != "admin":
        raise APIError(409, f"'{name}' follows the registry: move or delete its alias there", code="registry_managed")
    try:
        await state.adapters.unload_local(name)
    except (VllmUnavailable, AdapterLoadError) as exc:
        raise APIError(503, f"the model server did not unload it: {exc}", code="vllm_unavailable") from None
    return Response(status_code=204)
