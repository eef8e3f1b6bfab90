"""Promotion between environments: a registered model version (or prompt version) copied from one MLflow server to
another, and the alias moved there, through MLflow's public client only.

Every copy carries its **origin** in tags: the registry it was first registered in, its version number there and
its creation time (a copy of a copy keeps the first origin, so dev → staging → prod compares like with like). A
version never promoted is its own origin. **Newer**: of two origins in the same registry, the higher version
number; across registries, the later creation time. Promotion refuses when the target's alias already points at a
newer origin than the one promoted (``force`` overrides) and does nothing when it points at the same origin.
A prompt's template is checked as ``llmops prompts push`` checks it: the target's gateway would refuse a route that
names one it cannot fill, so such a version never reaches the target's registry.
"""

import tempfile
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from llmops_common.contracts import prompts as contract

ORIGIN_REGISTRY, ORIGIN_VERSION, ORIGIN_CREATED = (
    "llmops.origin.registry",
    "llmops.origin.version",
    "llmops.origin.created",
)
EXPERIMENT = "llmops-promotions"


class PromotionError(Exception):
    pass


@dataclass(frozen=True)
class Origin:
    registry: str
    version: int
    created_ms: int

    def newer_than(self, other: "Origin") -> bool:
        if self.registry == other.registry:
            return self.version > other.version
        return self.created_ms > other.created_ms

    def tags(self) -> dict[str, str]:
        return {ORIGIN_REGISTRY: self.registry, ORIGIN_VERSION: str(self.version), ORIGIN_CREATED: str(self.created_ms)}


def origin_of(version, *, registry: str) -> Origin:
    tags = version.tags or {}
    if ORIGIN_REGISTRY in tags:
        return Origin(tags[ORIGIN_REGISTRY], int(tags[ORIGIN_VERSION]), int(tags[ORIGIN_CREATED]))
    return Origin(registry, int(version.version), int(version.creation_timestamp or 0))


@dataclass(frozen=True)
class Promotion:
    name: str
    source_version: str
    target_version: str | None  # None: the target already served it
    origin: Origin


def _client(url: str) -> MlflowClient:
    return MlflowClient(tracking_uri=url, registry_uri=url)


def _missing(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def _check_target(current, origin: Origin, *, target: str, alias: str, force: bool) -> bool:
    """True when the target already serves this origin (nothing to do); raises when it serves a newer one."""
    if current is None:
        return False
    serving = origin_of(current, registry=target)
    if serving == origin:
        return True
    if serving.newer_than(origin) and not force:
        raise PromotionError(
            f"{target} serves a newer version at @{alias} (version {current.version}, origin {serving.registry} "
            f"version {serving.version}) than the one promoted (origin {origin.registry} version {origin.version}); "
            "--force to promote anyway"
        )
    return False


def promote_model(
    name: str, *, source: str, target: str, alias: str, version: str | None = None, force: bool = False
) -> Promotion:
    """Source: ``version``, else the version ``alias`` points at in the source registry."""
    src, dst = _client(source), _client(target)
    try:
        found = src.get_model_version(name, version) if version else src.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        what = f"version {version}" if version else f"alias @{alias}"
        raise PromotionError(f"{source} has no {what} of model {name!r} ({exc.message})") from None
    origin = origin_of(found, registry=source)
    current = _at_alias(dst.get_model_version_by_alias, name, alias)
    if _check_target(current, origin, target=target, alias=alias, force=force):
        return Promotion(name, str(found.version), None, origin)
    try:
        dst.get_registered_model(name)
    except MlflowException as exc:
        if not _missing(exc):
            raise
        # The source model's tags (e.g. the adapter tag the inference service syncs by) come along.
        dst.create_registered_model(name, tags=src.get_registered_model(name).tags)
    experiment = dst.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else dst.create_experiment(EXPERIMENT)
    run = dst.create_run(experiment_id, run_name=f"{name}-v{found.version}", tags={**origin.tags()})
    with tempfile.TemporaryDirectory(prefix="llmops-promote-") as tmp:
        local = download_artifacts(artifact_uri=found.source, dst_path=tmp, tracking_uri=source)
        dst.log_artifacts(run.info.run_id, local, "model")
    dst.set_terminated(run.info.run_id)
    tags = {**(found.tags or {}), **origin.tags(), "llmops.promoted_from": f"{source} version {found.version}"}
    copied = dst.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags)
    dst.set_registered_model_alias(name, alias, copied.version)
    return Promotion(name, str(found.version), str(copied.version), origin)


def _at_alias(lookup, name: str, alias: str):
    """The target's version at ``alias``, or None where the model, prompt or alias does not exist there yet."""
    try:
        return lookup(name, alias)
    except MlflowException as exc:
        if not _missing(exc):
            raise
        return None


def promote_prompt(
    name: str, *, source: str, target: str, alias: str, version: str | None = None, force: bool = False
) -> Promotion:
    src, dst = _client(source), _client(target)
    try:
        found = src.get_prompt_version(name, version) if version else src.get_prompt_version_by_alias(name, alias)
    except MlflowException as exc:
        found, detail = None, exc.message
    else:
        detail = "not found"
    if found is None:
        what = f"version {version}" if version else f"alias @{alias}"
        raise PromotionError(f"{source} has no {what} of prompt {name!r} ({detail})")
    try:
        contract.parts(found.template)
    except (ValueError, TypeError) as exc:
        raise PromotionError(
            f"prompt {name!r} version {found.version} of {source} is not a template the gateway can fill: {exc}"
        ) from None
    origin = origin_of(found, registry=source)
    current = _at_alias(dst.get_prompt_version_by_alias, name, alias)
    if _check_target(current, origin, target=target, alias=alias, force=force):
        return Promotion(name, str(found.version), None, origin)
    tags = {k: v for k, v in (found.tags or {}).items() if not k.startswith("mlflow.")}
    copied = dst.register_prompt(
        name,
        found.template,
        commit_message=found.commit_message,
        tags={**tags, **origin.tags(), "llmops.promoted_from": f"{source} version {found.version}"},
        response_format=found.response_format,
    )
    dst.set_prompt_alias(name, alias, copied.version)
    return Promotion(name, str(found.version), str(copied.version), origin)
