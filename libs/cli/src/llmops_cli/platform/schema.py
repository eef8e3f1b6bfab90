"""The platform file's outer shape. What is inside each section is the owning service's own schema, checked by that
service (a dry run) so no field is defined twice: a route is the gateway's ``RouteSpec`` (``PUT /admin/routes``),
a key's entry the gateway's managed key fields, a retraining policy the feedback service's ``RetrainingIn`` (with the
canary's experiment policy inside it)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops_cli.platform.yamlfile import FileError, YamlDocument

API_VERSION = "llmops/v1"
SECTIONS = ("routes", "keys", "retraining")


class PlatformFile(BaseModel):
    """A section left out is not managed (``--prune`` never touches it); an empty section manages "none"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: Literal["llmops/v1"] = Field(alias="apiVersion")
    routes: dict[str, dict[str, Any]] | None = None
    keys: dict[str, dict[str, Any]] | None = None
    retraining: dict[str, dict[str, Any]] | None = None


def parse(doc: YamlDocument) -> PlatformFile:
    if not isinstance(doc.data, dict):
        raise doc.error([], f"expected a mapping with apiVersion: {API_VERSION} and {', '.join(SECTIONS)}")
    try:
        return PlatformFile.model_validate(doc.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        location = ".".join(str(p) for p in first["loc"])
        raise doc.error(list(first["loc"]), f"{location or 'file'}: {first['msg']}") from None


__all__ = ["API_VERSION", "FileError", "PlatformFile", "parse"]
