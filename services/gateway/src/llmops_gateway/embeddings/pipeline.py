"""``POST /v1/embeddings``: authenticate -> route -> reserve quota -> call upstream (fallbacks, breakers) -> count.

A model resolves to a route of that name (any OpenAI-compatible embedding upstream), else, when it is one of
``GATEWAY_RETRIEVER_EMBEDDING_MODELS``, to the retriever's embedding model: the platform's default, reached with
the gateway's retriever token. Embeddings are not written to the request log: the log's records are answers to
rate and train on, and a vector is neither.
"""

import asyncio
import logging
import time

import orjson
from pydantic import ValidationError
from starlette.types import Scope

from llmops_common.contracts.embeddings import EmbeddingRequest
from llmops_common.errors import APIError, validation_error
from llmops_common.requests import parse_json_object
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.proxy.answers import Reply
from llmops_gateway.proxy.connection import UpstreamError, UpstreamTooLarge
from llmops_gateway.proxy.pipeline import BatchLine, authenticate
from llmops_gateway.proxy.quota import QuotaCheck
from llmops_gateway.proxy.upstream import UpstreamResponse, Upstreams
from llmops_gateway.quotas.headers import reservation_headers
from llmops_gateway.routing import selection
from llmops_gateway.routing.schemas import RouteSpec, Variant
from llmops_gateway.routing.service import RouteTable

logger = logging.getLogger(__name__)


class RetrieverEmbeddings:
    """The retriever's models as built-in routes: one variant each, at the retriever's OpenAI-compatible path."""

    def __init__(self, *, url: str, token: str, models: list[str]) -> None:
        self.token = token
        self._routes = {
            name: RouteSpec(variants=[Variant(name="retriever", upstream=f"{url.rstrip('/')}/v1", model=name)])
            for name in models
        }

    def get(self, model: str) -> RouteSpec | None:
        return self._routes.get(model)

    def names(self) -> list[str]:
        return list(self._routes)


class EmbeddingPipeline:
    def __init__(
        self,
        *,
        authenticator: KeyAuthenticator,
        routes: RouteTable,
        quota: QuotaCheck,
        upstreams: Upstreams,
        metrics: GatewayMetrics,
        retriever: RetrieverEmbeddings | None,
        max_body_bytes: int,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self._authenticator, self._routes, self._quota = authenticator, routes, quota
        self._upstreams, self._metrics, self._retriever = upstreams, metrics, retriever

    def default_models(self) -> list[str]:
        """The retriever's models this gateway serves without a route (``GET /v1/models`` lists them too)."""
        return self._retriever.names() if self._retriever is not None else []

    async def run(
        self,
        *,
        request_id: str,
        authorization: str | None,
        body: bytes,
        batch: BatchLine | None = None,
        scope: Scope | None = None,
    ) -> Reply:
        started = time.perf_counter()
        route = "-"  # refusals are counted under a configured route only
        try:
            key = await authenticate(self._authenticator, authorization, batch, scope)
            payload, parsed = _parse(body)
            spec, token = await self._resolve(parsed.model)
            route = parsed.model
            if not key.may_use(route):
                raise APIError(403, f"this key may not use model '{route}'", code="model_not_allowed")
            estimate = parsed.estimated_tokens()
            reservation = await self._quota.reserve_tokens(key, route, spec, prompt=estimate)
        except APIError as exc:
            self._metrics.for_variant(route, "-").count(exc.status)
            raise
        variants = selection.candidates(route, spec, user=selection.assignment_unit(parsed.user, key.id))
        used = 0  # tokens the upstream counted: what replaces the reservation
        status, variant = 499, "-"
        try:
            upstream = await self._upstreams.send(
                route=route, variants=variants, path="/embeddings", payload=payload, request_id=request_id, token=token
            )
            variant = upstream.variant.name
            answer = await self._read(upstream)
            status = upstream.response.status
            used = _usage(answer, estimate) if status == 200 else 0
        except APIError as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            used = estimate  # the upstream may have embedded it all
            raise
        finally:
            cost = self._quota.cost(variant, prompt_tokens=used)
            self._quota.reconcile(reservation, actual_tokens=used, actual_cost=cost)
            m = self._metrics.for_variant(route, variant)
            m.count(status)
            m.latency.observe(time.perf_counter() - started)
            m.prompt_tokens.inc(used)
        headers = upstream.passthrough_headers()
        headers["x-llmops-variant"] = variant
        headers.update(reservation_headers(reservation))
        return Reply(status, headers, answer)

    async def _read(self, upstream: UpstreamResponse) -> bytes:
        """The upstream's answer, whole, or a 502; the exchange settled: a 200 is judged by its whole answer, as a
        completion's is (``Upstreams.settle``)."""
        name, failure, abandoned = upstream.variant.name, None, False
        try:
            return await upstream.response.read()
        except UpstreamTooLarge as exc:  # cut at GATEWAY_UPSTREAM_MAX_ANSWER_BYTES, its connection closed
            logger.warning("upstream answer over the size limit", extra={"variant": name, "error": str(exc)})
            failure = "too_large"
            message, code = f"upstream {name!r} answered over the size limit", "upstream_response_too_large"
        except UpstreamError:
            failure = "broken"
            message, code = f"upstream {name!r} failed mid-response", "upstream_error"
        except asyncio.CancelledError:
            abandoned = True
            raise
        finally:
            upstream.response.release()
            if upstream.response.status == 200:
                self._upstreams.settle(upstream, failure=failure, abandoned=abandoned)
        raise APIError(502, message, code=code, headers={"x-llmops-variant": name})

    async def route_spec(self, model: str) -> RouteSpec | None:
        """The route a request for ``model`` takes: a route of that name, else the retriever's model; None: neither
        (the request is 404). Batches estimate their embedding lines against it."""
        spec, _ = await self._lookup(model)
        return spec

    async def _resolve(self, model: str) -> tuple[RouteSpec, str | None]:
        spec, token = await self._lookup(model)
        if spec is None:
            raise APIError(404, f"The model '{model}' does not exist", code="model_not_found", param="model")
        return spec, token

    async def _lookup(self, model: str) -> tuple[RouteSpec | None, str | None]:
        spec = await self._routes.get(model)
        if spec is not None:
            return spec, None
        if self._retriever is not None and (spec := self._retriever.get(model)) is not None:
            return spec, self._retriever.token
        return None, None


def _parse(body: bytes) -> tuple[dict, EmbeddingRequest]:
    payload = parse_json_object(body)
    try:
        return payload, EmbeddingRequest.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None


def _usage(answer: bytes, estimate: int) -> int:
    """The upstream's count (``usage.prompt_tokens``, else ``total_tokens``), else the estimate."""
    try:
        usage = orjson.loads(answer).get("usage") or {}
        counted = usage.get("prompt_tokens", usage.get("total_tokens"))
        return int(counted) if counted is not None else estimate
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        logger.warning("embedding answer is not OpenAI JSON")
        return estimate
