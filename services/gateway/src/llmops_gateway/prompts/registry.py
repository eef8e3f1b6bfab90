"""Registered prompts as the hot path sees them: resolved through MLflow once, then served from memory.

A background loop fetches every reference in use again each ``ttl_s``, so a moved alias reaches the requests of
every replica within about ``ttl_s`` (plus one MLflow round-trip) without a restart, and no request waits on
MLflow but the first one of a reference in this process. While MLflow is unreachable the last version fetched keeps
serving (a registry outage must not take answers down); a reference whose alias or version is gone, or whose
template can no longer be filled, is refused with 503 ``prompt_unavailable`` and counted
(``llmops_gateway_prompt_errors``), never sent with a hole in it.

MLflow's client is blocking: its calls run in a thread, with one immediate retry and a short timeout (its defaults
retry for minutes, which would hold a route save, or the first request of a route, that long).
"""

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass

from llmops_common.contracts.prompts import REF_PATTERN
from llmops_common.errors import APIError
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.prompts.models import Prompt

logger = logging.getLogger(__name__)

_MISSING = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}  # what MLflow says of a gone alias
_FORGET_AFTER_REFRESHES = 100  # a reference no request used for this many periods is dropped from the cache


class PromptNotFound(Exception):
    """The reference does not resolve (no such prompt, alias or version)."""

    reason = "not_found"


class PromptInvalid(PromptNotFound):
    """It resolves to a template the gateway cannot fill (the message says why)."""

    reason = "invalid"


@dataclass(slots=True)
class _Entry:
    prompt: Prompt | None  # None: the reference failed (``reason``)
    reason: str | None
    message: str
    rag: bool | None  # what the reference is used as (route RAG template: True; a variant's prompt: None)
    used_at: float


def _split(ref: str) -> tuple[str, str | None, str | None]:
    """``(name, alias, version)`` of a ``prompts:/`` reference."""
    body = ref.removeprefix("prompts:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, alias, None
    name, version = body.rsplit("/", 1)
    return name, None, version


class PromptRegistry:
    def __init__(self, tracking_uri: str | None, *, ttl_s: float, metrics: GatewayMetrics) -> None:
        self._uri, self._ttl_s, self._metrics = tracking_uri, ttl_s, metrics
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Future] = {}  # first fetches in flight: concurrent requests share one
        self._client = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._uri is not None:
            self._task = asyncio.create_task(self._refresh_loop(), name="prompt-refresh")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def check_route(self, spec, *, at: str = "") -> None:
        """Every registered prompt a route spec names resolves now (422 naming the field of the first that does not,
        prefixed with ``at``: ``routes.NAME.`` in a platform file): however the route is saved (PUT, revert, a
        platform file), a reference never fails its requests later by surprise."""
        for field, ref, rag in spec.prompt_fields:
            try:
                await self.check(ref, rag=rag)
            except APIError as exc:
                if exc.status != 422:
                    raise
                raise APIError(422, f"{at}{field}: {exc.message}", code=exc.code, param=f"{at}{field}") from None

    async def check(self, ref: str, *, rag: bool | None) -> Prompt:
        """A reference a route is being saved with: fetched now (never from the cache), or ``APIError`` 422 naming
        it (503 when MLflow cannot be asked). Primes the cache, so the route's first request does not wait."""
        if self._uri is None:
            raise APIError(422, f"{ref}: no prompt registry is configured (GATEWAY_MLFLOW_URL)", code="invalid_prompt")
        try:
            prompt = await self._fetch(ref, rag=rag)
        except PromptNotFound as exc:
            raise APIError(422, f"{ref}: {exc}", code="invalid_prompt", param=ref) from None
        except Exception as exc:  # noqa: BLE001 - MLflow's client raises many kinds for a server it cannot reach
            logger.warning("prompt registry unreachable", extra={"ref": ref, "error": repr(exc)})
            raise APIError(
                503, f"{ref}: the prompt registry is unreachable", code="prompt_registry_unavailable"
            ) from None
        self._entries[ref] = _Entry(prompt, None, "", rag, time.monotonic())
        return prompt

    async def resolve(self, ref: str, *, rag: bool | None, route: str) -> Prompt:
        """The prompt a request uses: from memory, but for the first request of a reference in this process."""
        entry = self._entries.get(ref)
        if entry is None:
            loading = self._loading.get(ref)
            if loading is None:
                loading = self._loading[ref] = asyncio.ensure_future(self._load(ref, rag=rag))
                loading.add_done_callback(lambda _: self._loading.pop(ref, None))
            entry = await asyncio.shield(loading)  # one client leaving must not cancel the others' fetch
        entry.used_at = time.monotonic()
        if entry.prompt is None:
            self._metrics.prompt_errors.labels(route, entry.reason).inc()
            raise APIError(503, f"the route's prompt {ref} {entry.message}", code="prompt_unavailable")
        return entry.prompt

    async def _load(self, ref: str, *, rag: bool | None) -> _Entry:
        entry = _Entry(None, "registry_unavailable", "cannot be fetched: the prompt registry is unreachable", rag, 0.0)
        if self._uri is None:
            entry.message = "cannot be fetched: no prompt registry is configured"
        else:
            await self._update(ref, entry)
        self._entries.setdefault(ref, entry)
        return self._entries[ref]

    async def _update(self, ref: str, entry: _Entry) -> None:
        try:
            entry.prompt, entry.reason, entry.message = await self._fetch(ref, rag=entry.rag), None, ""
        except PromptNotFound as exc:
            logger.error("registered prompt unavailable", extra={"ref": ref, "error": str(exc)})
            entry.prompt, entry.reason, entry.message = None, exc.reason, f"does not resolve: {exc}"
        except Exception as exc:  # noqa: BLE001 - unreachable: keep what was fetched last, if anything
            logger.warning(
                "prompt registry unreachable; serving the last version", extra={"ref": ref, "error": repr(exc)}
            )

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_s)
            stale = time.monotonic() - self._ttl_s * _FORGET_AFTER_REFRESHES
            for ref in [r for r, e in self._entries.items() if e.used_at < stale]:
                del self._entries[ref]
            # One at a time: a handful of references, and MLflow need not see a burst every period.
            for ref, entry in list(self._entries.items()):
                await self._update(ref, entry)

    async def _fetch(self, ref: str, *, rag: bool | None) -> Prompt:
        if not re.match(REF_PATTERN, ref):
            raise PromptInvalid("not a prompts:/<name>@<alias> or prompts:/<name>/<version> reference")
        return await asyncio.to_thread(self._fetch_blocking, ref, rag)

    def _fetch_blocking(self, ref: str, rag: bool | None) -> Prompt:
        from mlflow.exceptions import MlflowException

        name, alias, version = _split(ref)
        client = self._mlflow()
        try:
            if alias is not None:
                found = client.get_prompt_version_by_alias(name, alias)
            else:
                found = client.get_prompt_version(name, version)
        except MlflowException as exc:
            if exc.error_code in _MISSING:
                raise PromptNotFound(f"no such prompt, alias or version ({exc.message})") from None
            raise
        if found is None:
            raise PromptNotFound("no such prompt or version")
        try:
            return Prompt.registered(name, str(found.version), found.template, rag=rag)
        except (ValueError, TypeError) as exc:
            raise PromptInvalid(f"version {found.version}: {exc}") from None

    def _mlflow(self):
        if self._client is None:
            # Fail fast: the caller keeps serving what it has, and retries on its next period. One immediate retry:
            # a pooled connection MLflow closed (a restart, an outage just over) must not fail a route's save.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
            from mlflow import MlflowClient  # imported on first use: a gateway without prompts never loads it

            self._client = MlflowClient(tracking_uri=self._uri, registry_uri=self._uri)
        return self._client
