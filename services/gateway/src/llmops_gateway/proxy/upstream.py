"""Sending a request to a route's variants in order, with fallbacks and circuit breakers."""

import asyncio
import logging
import os
import time
from dataclasses import dataclass

import orjson

from llmops_common import tracing
from llmops_common.contracts.adapters import MODEL_VERSION_HEADER
from llmops_common.errors import APIError
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.proxy.client import UpstreamClient
from llmops_gateway.proxy.connection import Response, UpstreamError, UpstreamTimeout
from llmops_gateway.routing.breaker import Admission, CircuitBreakers
from llmops_gateway.routing.schemas import Variant

logger = logging.getLogger(__name__)

# Statuses after which the next fallback is tried; 5xx also count against the variant's circuit.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_CREDENTIAL_STATUSES = frozenset({401, 403})  # about the gateway's own credential for the upstream
# Headers of the upstream's connection, not of its answer, and its own request id (the client gets the gateway's).
# The body passes through as sent, and so does its content-encoding (none is asked for).
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"server", b"date", b"x-request-id"}
)


@dataclass(slots=True)
class UpstreamResponse:
    variant: Variant
    response: Response
    sent_at: float  # perf_counter when the request went out
    headers_at: float  # perf_counter when the status line arrived
    route: str = "-"
    admission: Admission = Admission.allowed  # settled (``Upstreams.settle``) once the answer has been read

    def passthrough_headers(self) -> dict[str, str]:
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.response.headers if k not in _HOP_BY_HOP}

    def model_version(self) -> str | None:
        """The registry version that answered, where the upstream is the platform's inference service."""
        for name, value in self.response.headers:
            if name == _MODEL_VERSION:
                return value.decode("latin-1")[:64] or None
        return None


_MODEL_VERSION = MODEL_VERSION_HEADER.encode()
_ERROR_BODY_BYTES = 64 * 1024  # of a refusal's body (only its start is logged); a longer one closes the connection


def _upstream_headers(variant: Variant, request_id: str, token: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())]
    if token:  # a platform service the gateway holds a token for (the retriever's embeddings)
        headers.append((b"authorization", f"Bearer {token}".encode()))
    elif variant.api_key_env:
        api_key = os.environ.get(variant.api_key_env)
        if api_key:
            headers.append((b"authorization", f"Bearer {api_key}".encode()))
    if tracing.on:
        tracing.inject_headers(headers)  # traceparent of the completion's span
    return headers


class Upstreams:
    """The call-upstream stage: a route's candidate variants in order, through their circuit breakers."""

    def __init__(self, client: UpstreamClient, breakers: CircuitBreakers, metrics: GatewayMetrics) -> None:
        self._client, self._breakers, self._metrics = client, breakers, metrics

    async def send(
        self,
        *,
        route: str,
        variants: list[Variant],
        path: str,
        payload: dict,
        request_id: str,
        token: str | None = None,
    ) -> UpstreamResponse:
        """Returns the first usable upstream response (its body not yet read), or raises a 502/503/504 ``APIError``.
        ``token``: sent as the bearer token instead of a variant's ``api_key_env``."""
        breakers, metrics = self._breakers, self._metrics
        last_error: APIError | None = None
        for variant in variants:
            admission = breakers.allow(route, variant.name)
            if not admission:
                metrics.upstream_errors.labels(route, variant.name, "circuit_open").inc()
                last_error = last_error or APIError(
                    503, f"variant {variant.name!r} is unavailable (circuit open)", code="circuit_open"
                )
                continue
            payload["model"] = variant.model
            sent_at = time.perf_counter()
            try:
                response = await self._client.post(
                    variant.base_url, path, orjson.dumps(payload), _upstream_headers(variant, request_id, token)
                )
            except asyncio.CancelledError:
                breakers.record_abandoned(route, variant.name, admission)
                raise
            except UpstreamTimeout as exc:
                last_error = _failed(breakers, metrics, route, variant, "timeout", exc, 504)
                continue
            except (UpstreamError, OSError) as exc:
                last_error = _failed(breakers, metrics, route, variant, "connect", exc, 502)
                continue
            if response.status in _RETRY_STATUSES:
                last_error = await _refused(breakers, metrics, route, variant, response)
                continue
            if response.status in _CREDENTIAL_STATUSES:
                last_error = await _credentials_refused(breakers, metrics, route, variant, response)
                continue
            if response.status != 200:  # a client error passed through: the upstream itself works
                breakers.record_success(route, variant.name)
            # A 200 is judged by its whole answer (``settle``): an upstream that breaks every stream halfway, or
            # sends what is not an answer, must open its circuit, and a success at the status line would reset it.
            return UpstreamResponse(
                variant=variant,
                response=response,
                sent_at=sent_at,
                headers_at=time.perf_counter(),
                route=route,
                admission=admission,
            )
        error = last_error or APIError(503, "no variant available", code="no_variant")
        error.headers = {**(error.headers or {}), "x-llmops-variant": variants[-1].name}  # the last one tried
        raise error

    def settle(self, upstream: UpstreamResponse, *, failure: str | None = None, abandoned: bool = False) -> None:
        """How a 200 answer ended: whole (success), ``failure`` (its kind: it broke, stalled or was not an answer),
        or ``abandoned`` by the client (proves nothing either way)."""
        route, name = upstream.route, upstream.variant.name
        if abandoned:
            self._breakers.record_abandoned(route, name, upstream.admission)
        elif failure is not None:
            self._breakers.record_failure(route, name)
            self._metrics.upstream_errors.labels(route, name, failure).inc()
        else:
            self._breakers.record_success(route, name)


async def _refused(breakers, metrics, route: str, variant: Variant, response: Response) -> APIError:
    """An answer with a status after which the next fallback is tried."""
    body = await _read_quietly(response)
    kind = "overloaded" if response.status == 429 else "status_5xx"
    if response.status >= 500:
        breakers.record_failure(route, variant.name)
    else:
        breakers.record_success(route, variant.name)
    metrics.upstream_errors.labels(route, variant.name, kind).inc()
    logger.warning(
        "upstream answered %s", response.status, extra={"route": route, "variant": variant.name, "body": body[:300]}
    )
    if response.status == 429:
        retry_after = (response.header(b"retry-after") or b"1").decode("latin-1")
        return APIError(
            429,
            f"upstream {variant.name!r} is overloaded",
            code="upstream_overloaded",
            headers={"retry-after": retry_after if retry_after.isdigit() else "1"},
        )
    return APIError(502, f"upstream {variant.name!r} answered {response.status}", code="upstream_error")


async def _credentials_refused(breakers, metrics, route: str, variant: Variant, response: Response) -> APIError:
    """401/403: the upstream refused the gateway's credential for it (``api_key_env``, a service token), not the
    client's key, which the gateway accepted: the upstream's failure, not the client's to see. Its body is neither
    relayed nor logged: servers quote the key they refuse (OpenAI a part of it)."""
    await _read_quietly(response)
    breakers.record_failure(route, variant.name)
    metrics.upstream_errors.labels(route, variant.name, "credentials_refused").inc()
    logger.warning(
        "upstream refused the gateway's credentials (%s)",
        response.status,
        extra={"route": route, "variant": variant.name},
    )
    return APIError(502, f"upstream {variant.name!r} refused the gateway's credentials", code="upstream_auth_error")


def _failed(breakers, metrics, route: str, variant: Variant, kind: str, exc: BaseException, status: int) -> APIError:
    breakers.record_failure(route, variant.name)
    metrics.upstream_errors.labels(route, variant.name, kind).inc()
    logger.warning("upstream %s failed", kind, extra={"route": route, "variant": variant.name, "error": repr(exc)})
    word = "timed out" if kind == "timeout" else "unreachable"
    return APIError(status, f"upstream {variant.name!r} {word}", code=f"upstream_{kind}")


async def _read_quietly(response: Response) -> str:
    try:
        return (await response.read(_ERROR_BODY_BYTES)).decode(errors="replace")
    except UpstreamError:
        return ""
    finally:
        response.release()
