"""What the closed loop acts on: the gateway's routes (its admin API), the MLflow registry's aliases (MLflow's REST
API, so the feedback service does not carry the whole MLflow client) and the trainer's jobs (its API).

Every change sets an absolute state (weights, an alias to a version), so applying a decision twice is harmless: a
controller that restarts mid-way applies it again.
"""

from urllib.parse import quote

import httpx

from llmops_common.errors import APIError


class PlatformError(Exception):
    """The gateway or the registry could not be reached or refused: the decision stays unapplied, retried later."""


def _route_path(name: str) -> str:
    """The route's admin URL path, its name escaped: a name is a client's text (a control character was an invalid
    URL and a 500; a "../keys" would have addressed another admin endpoint)."""
    return f"/admin/routes/{quote(name, safe='')}"


class GatewayRoutes:
    """The gateway's routes (its admin API), and whether the upstreams they name serve a model yet."""

    def __init__(
        self,
        http: httpx.AsyncClient | None,
        upstreams: httpx.AsyncClient | None = None,
        upstream_keys: dict[str, str] | None = None,
    ) -> None:
        self._http = http  # None: no gateway configured (FEEDBACK_GATEWAY_URL)
        self._upstreams = upstreams
        # The upstream keys this service holds, by the ``api_key_env`` name route variants give them.
        self._upstream_keys = {name: key for name, key in (upstream_keys or {}).items() if key}

    @property
    def configured(self) -> bool:
        return self._http is not None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise PlatformError("no gateway configured (FEEDBACK_GATEWAY_URL)")
        return self._http

    async def get(self, name: str) -> dict | None:
        """The route's spec as the admin API gives it, or None when there is no such route."""
        try:
            response = await self._client().get(_route_path(name))
        except httpx.HTTPError as exc:
            raise PlatformError(f"gateway unreachable: {exc!r}") from None
        # 422: a name no route can have (the gateway's name pattern), so there is no such route either.
        if response.status_code in (404, 422):
            return None
        if response.status_code != 200:
            raise PlatformError(f"gateway answered {response.status_code} for route {name!r}: {response.text[:300]}")
        return response.json()

    async def put(self, name: str, spec: dict) -> None:
        """Replaces the route with ``spec`` (the admin API's body; its read-only fields are dropped)."""
        body = {k: v for k, v in spec.items() if k not in ("name", "updated_at")}
        try:
            response = await self._client().put(_route_path(name), json=body)
        except httpx.HTTPError as exc:
            raise PlatformError(f"gateway unreachable: {exc!r}") from None
        if response.status_code >= 400:
            raise PlatformError(f"gateway refused route {name!r}: {response.status_code} {response.text[:300]}")

    async def delete(self, name: str) -> None:
        """Removes the route; one already gone is fine."""
        try:
            response = await self._client().delete(_route_path(name))
        except httpx.HTTPError as exc:
            raise PlatformError(f"gateway unreachable: {exc!r}") from None
        if response.status_code >= 400 and response.status_code != 404:
            raise PlatformError(
                f"gateway refused to delete route {name!r}: {response.status_code} {response.text[:300]}"
            )

    async def serves(self, upstream: str, model: str, *, api_key_env: str | None = None) -> bool:
        """Whether the OpenAI-compatible ``upstream`` lists ``model`` (an adapter still loading is not listed), asked
        with the key the variant names in ``api_key_env``, where this service holds it."""
        if self._upstreams is None:
            return False
        key = self._upstream_keys.get(api_key_env) if api_key_env else None
        headers = {"authorization": f"Bearer {key}"} if key else None
        try:
            response = await self._upstreams.get(f"{str(upstream).rstrip('/')}/models", headers=headers)
            return response.status_code == 200 and model in {m.get("id") for m in response.json().get("data", [])}
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    async def set_split(
        self, name: str, *, champion: str, challenger: str, share: float, champion_serves: dict | None = None
    ) -> None:
        """The challenger gets ``share`` of the route's traffic and the champion the rest, sticky per user;
        ``champion_serves`` (``{"model", "upstream", "api_key_env"}``) also changes what the champion variant serves."""
        spec = await self.get(name)
        if spec is None:
            raise PlatformError(f"route {name!r} no longer exists")
        for variant in spec["variants"]:
            if variant["name"] == champion:
                variant["weight"] = round(1.0 - share, 6)
                variant.update(champion_serves or {})
            elif variant["name"] == challenger:
                variant["weight"] = round(share, 6)
        await self.put(name, spec | {"sticky": True})


class Registry:
    """The few MLflow model-registry calls experiments need."""

    def __init__(self, http: httpx.AsyncClient | None) -> None:
        self._http = http  # None: no registry configured (FEEDBACK_MLFLOW_TRACKING_URI)

    async def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        if self._http is None:
            raise PlatformError("no model registry configured (FEEDBACK_MLFLOW_TRACKING_URI)")
        try:
            return await self._http.request(method, f"/api/2.0/mlflow{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise PlatformError(f"registry unreachable: {exc!r}") from None

    async def alias_version(self, model: str, alias: str) -> str | None:
        response = await self._call("GET", "/registered-models/alias", params={"name": model, "alias": alias})
        # An unknown model is 404 RESOURCE_DOES_NOT_EXIST; an unknown alias of a known one, 400 "... not found".
        if response.status_code == 404 or (response.status_code == 400 and "not found" in response.text):
            return None
        _check(response)
        return str(response.json()["model_version"]["version"])

    async def set_alias(self, model: str, alias: str, version: str) -> None:
        body = {"name": model, "alias": alias, "version": version}
        _check(await self._call("POST", "/registered-models/alias", json=body))

    async def version_tags(self, model: str, version: str) -> dict[str, str]:
        response = await self._call("GET", "/model-versions/get", params={"name": model, "version": version})
        _check(response)
        return {t["key"]: t["value"] for t in response.json()["model_version"].get("tags") or []}

    async def tag_version(self, model: str, version: str, key: str, value: str) -> None:
        body = {"name": model, "version": version, "key": key, "value": value}
        _check(await self._call("POST", "/model-versions/set-tag", json=body))


class Trainer:
    """The trainer's job API (its admin token)."""

    def __init__(self, http: httpx.AsyncClient | None) -> None:
        self._http = http  # None: no trainer configured (FEEDBACK_TRAINER_URL)

    async def _call(self, method: str, path: str, **kwargs) -> dict:
        if self._http is None:
            raise PlatformError("no trainer configured (FEEDBACK_TRAINER_URL)")
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise PlatformError(f"trainer unreachable: {exc!r}") from None
        if response.status_code >= 400:
            raise PlatformError(f"trainer answered {response.status_code}: {response.text[:500]}")
        return response.json()

    async def submit(self, job: dict) -> dict:
        return await self._call("POST", "/jobs", json=job)

    async def get(self, job_id: str) -> dict:
        return await self._call("GET", f"/jobs/{job_id}")


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise PlatformError(f"registry answered {response.status_code}: {response.text[:300]}")


def unavailable(exc: PlatformError) -> APIError:
    return APIError(503, str(exc), code="platform_unavailable")
