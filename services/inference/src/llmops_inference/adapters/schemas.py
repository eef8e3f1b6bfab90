"""Admin API bodies for adapters."""

from pydantic import BaseModel, ConfigDict, Field

# No "@": model@alias names (llmops_common.contracts.adapters.served_name) belong to adapters synced from the registry.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class AdapterLoad(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="the model name clients will ask for")
    path: str = Field(min_length=1, max_length=4096, description="absolute path of a PEFT adapter directory")


class AdapterPublic(BaseModel):
    name: str
    source: str  # registry | admin
    loaded: bool
    path: str | None = None
    model: str | None = None  # registry adapters: the registered model, alias and version
    alias: str | None = None
    version: str | None = None
    error: str | None = None


class SyncPublic(BaseModel):
    registry: str | None  # the MLflow tracking URI, or None when registry sync is off
    registry_error: str | None
    registry_read_at: float | None
    synced: bool
    interval_s: float


class AdapterList(BaseModel):
    data: list[AdapterPublic]
    sync: SyncPublic
