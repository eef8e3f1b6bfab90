"""One proxied completion: authenticate, validate, route, reserve quota, call upstream, relay, account."""

import asyncio
import logging
import math
import time
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from llmops_common.errors import APIError
from llmops_common.requests import parse_json_object
from llmops_common.streaming import ClientDisconnected
from llmops_gateway.keys.auth import AuthenticatedKey
from llmops_gateway.proxy import tokens
from llmops_gateway.proxy.client import UpstreamError
from llmops_gateway.proxy.exchange import Exchange, Reply
from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest
from llmops_gateway.proxy.sse import StreamTap
from llmops_gateway.proxy.upstream import UpstreamResponse, send
from llmops_gateway.quotas.headers import limit_headers, reservation_headers
from llmops_gateway.quotas.limiter import QuotaExceeded, QuotaStoreUnavailable, Reservation
from llmops_gateway.rag import service as rag_service
from llmops_gateway.rag.sources import sse_event
from llmops_gateway.rag.stream import DoneInjector
from llmops_gateway.routing import selection
from llmops_gateway.routing.schemas import RouteSpec
from llmops_gateway.settings import QuotaFailureMode
from llmops_gateway.state import GatewayState

logger = logging.getLogger(__name__)

PATHS = {"chat": "/chat/completions", "text": "/completions"}
MODELS = {"chat": ChatCompletionRequest, "text": CompletionRequest}


@dataclass(slots=True)
class Call:
    """What is known about a request by the time it reaches the upstream."""

    request_id: str
    kind: str
    key: AuthenticatedKey
    route: str
    parsed: ChatCompletionRequest | CompletionRequest
    reservation: Reservation | None
    started: float  # perf_counter
    started_wall: float  # time.time
    rag: rag_service.RagContext | None = None  # set when the prompt was augmented with retrieved context


def parse(body: bytes, kind: str) -> tuple[dict, ChatCompletionRequest | CompletionRequest]:
    payload = parse_json_object(body)
    try:
        parsed = MODELS[kind].model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise APIError(422, f"{where}: {first['msg']}" if where else first["msg"], code="invalid_request") from None
    return payload, parsed


async def reserve(
    gw: GatewayState, key: AuthenticatedKey, route: str, spec: RouteSpec, parsed, *, extra_tokens: int = 0
) -> Reservation | None:
    if key.limits.empty and spec.limits.empty:
        return None  # nothing to count: no estimate, no Redis
    cost = (
        extra_tokens
        + tokens.estimate_prompt_tokens(parsed)
        + tokens.completion_budget(parsed, default=gw.settings.default_max_tokens_reserve)
    )
    try:
        return await gw.limiter.reserve(
            key_id=key.id, key_limits=key.limits, route=route, route_limits=spec.limits, tokens=cost
        )
    except QuotaExceeded as exc:
        gw.metrics.quota_refusals.labels(exc.scope, exc.kind).inc()
        headers = limit_headers(exc.kind, exc.limit, 0, exc.retry_after_s)
        if exc.cost > exc.limit:  # waiting never helps, so no Retry-After
            message = f"request needs {exc.cost} tokens, over the {exc.scope} {exc.kind} limit of {exc.limit}; lower max_tokens"
            raise APIError(429, message, code="request_over_limit", headers=headers) from None
        retry_after = max(1, math.ceil(exc.retry_after_s))
        headers["retry-after"] = str(retry_after)
        message = f"{exc.scope} limit reached: {exc.kind} {exc.limit}; retry after {retry_after}s"
        raise APIError(429, message, code=f"{exc.kind}_limit_exceeded", headers=headers) from None
    except QuotaStoreUnavailable as exc:
        mode = gw.settings.quota_failure_mode
        gw.metrics.quota_store_errors.labels(mode.value).inc()
        logger.error("quota store unreachable", extra={"mode": mode.value, "error": str(exc)})
        if mode is QuotaFailureMode.closed:
            raise APIError(503, "quota store unavailable", code="quota_store_unavailable") from None
        return None


async def complete(gw: GatewayState, exchange: Exchange, *, kind: str) -> Reply:
    started, started_wall = time.perf_counter(), time.time()
    request_id = exchange.request_id
    route_label = "-"  # refusals are counted under a configured route only, never under any name a client sends
    try:
        key = await gw.authenticator.authenticate(exchange.header(b"authorization"))
        payload, parsed = parse(await exchange.body(gw.settings.max_body_bytes), kind)
        route = parsed.model
        spec = await gw.routes.get(route)
        if spec is None:
            raise APIError(404, f"The model '{route}' does not exist", code="model_not_found")
        route_label = route
        if not key.may_use(route):
            raise APIError(403, f"this key may not use model '{route}'", code="model_not_allowed")
        rag = rag_service.plan(gw, payload, spec)  # before quota: validation only
        reservation = await reserve(gw, key, route, spec, parsed, extra_tokens=rag_service.context_tokens(rag))
    except APIError as exc:  # refused before any upstream: still a request, for error rates
        gw.metrics.for_variant(route_label, "-").count(exc.status)
        raise
    call = Call(request_id, kind, key, route, parsed, reservation, started, started_wall)
    if rag is not None:
        try:
            call.rag = await rag_service.retrieve(gw, rag, payload, kind=kind, route=route, request_id=request_id)
        except APIError as exc:
            finish(gw, call, variant="-", status=exc.status, usage=None, answer=None, upstream_s=0.0, error=exc.message)
            raise
        call.parsed = parsed = MODELS[kind].model_validate(payload)  # the prompt as the upstream sees it
    if parsed.stream:
        payload["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
    variants = selection.candidates(route, spec, user=parsed.user or key.id)
    try:
        async with exchange.cancelled_on_disconnect():
            try:
                upstream = await send(
                    client=gw.upstream,
                    breakers=gw.breakers,
                    metrics=gw.metrics,
                    route=route,
                    variants=variants,
                    path=PATHS[kind],
                    payload=payload,
                    request_id=request_id,
                )
            except APIError as exc:
                finish(
                    gw, call, variant="-", status=exc.status, usage=None, answer=None, upstream_s=0.0, error=exc.message
                )
                raise
            headers = upstream.passthrough_headers()
            headers["x-llmops-variant"] = upstream.variant.name
            headers.update(reservation_headers(reservation))
            if call.rag is not None:
                headers["x-llmops-rag"] = "context" if call.rag.context else "no-context"
            if parsed.stream and upstream.response.status == 200:
                # From here the server side watches the client itself while it relays the stream.
                headers.setdefault("content-type", "text/event-stream")
                return Reply(200, headers, stream=relay(gw, call, upstream))
            return await respond_whole(gw, call, upstream, headers)
    except ClientDisconnected:
        # The upstream had the prompt: charge it, as for an abandoned stream.
        usage = {"prompt_tokens": tokens.estimate_prompt_tokens(parsed)}
        finish(gw, call, variant="-", status=499, usage=usage, answer=None, upstream_s=0.0, error="client disconnected")
        return Reply(499, {})  # nobody reads it


async def respond_whole(gw: GatewayState, call: Call, upstream: UpstreamResponse, headers: dict) -> Reply:
    response = upstream.response
    try:
        body = await response.read()
    except UpstreamError as exc:
        finish(
            gw,
            call,
            variant=upstream.variant.name,
            model=upstream.variant.model,
            status=502,
            usage=None,
            answer=None,
            upstream_s=time.perf_counter() - upstream.sent_at,
            error=repr(exc),
        )
        raise APIError(502, f"upstream {upstream.variant.name!r} failed mid-response", code="upstream_error") from None
    finally:
        response.release()
    upstream_s = time.perf_counter() - upstream.sent_at
    usage, answer = None, None
    if response.status == 200:
        try:
            document = orjson.loads(body)
            usage = document.get("usage")
            choice = (document.get("choices") or [{}])[0]
            answer = (choice.get("message") or {}).get("content") if call.kind == "chat" else choice.get("text")
            if call.rag is not None:  # the retrieved sources travel with the answer (an extension field)
                body = orjson.dumps({**document, "sources": call.rag.sources})
        except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
            logger.warning("upstream answer is not OpenAI JSON", extra={"variant": upstream.variant.name})
    finish(
        gw,
        call,
        variant=upstream.variant.name,
        model=upstream.variant.model,
        status=response.status,
        usage=usage,
        answer=answer,
        upstream_s=upstream_s,
    )
    return Reply(response.status, headers, body)


async def relay(gw: GatewayState, call: Call, upstream: UpstreamResponse):
    """Yields the upstream's SSE bytes as they arrive, unbuffered; accounts for them when the stream ends."""
    tap, ttft, status, error = StreamTap(), None, 200, None
    sources = None  # RAG: the sources go out as a last event before [DONE]
    if call.rag is not None:
        sources = DoneInjector(
            sse_event(call.rag.sources, request_id=call.request_id, model=call.route, kind=call.kind)
        )
    try:
        async for data in upstream.response.chunks():
            out = sources.feed(data) if sources else data
            if out:
                yield out
            tap.feed(data)
            if ttft is None and tap.chunks:
                ttft = time.perf_counter() - call.started
        if sources:
            yield sources.finish()
    except UpstreamError as exc:
        status, error = 502, repr(exc)
        logger.warning("upstream stream broke", extra={"variant": upstream.variant.name, "error": error})
        yield b'data: {"error": {"message": "upstream stream interrupted", "type": "server_error", "code": "upstream_error"}}\n\n'
    except (asyncio.CancelledError, GeneratorExit):
        status, error = 499, "client disconnected"  # 499: nginx's "client closed request"
        raise
    finally:
        if tap.done:
            upstream.response.release()
        else:
            upstream.response.close()  # closing the connection is what tells the upstream to stop generating
        # Without the upstream's usage chunk (client left, stream broke) the prompt was still processed:
        # charge its estimate, or a client could read one chunk of a huge prompt and pay nothing.
        usage = tap.usage or {
            "prompt_tokens": tokens.estimate_prompt_tokens(call.parsed),
            "completion_tokens": tap.chunks,
        }
        finish(
            gw,
            call,
            variant=upstream.variant.name,
            model=upstream.variant.model,
            status=status,
            usage=usage,
            answer=tap.answer,
            upstream_s=time.perf_counter() - upstream.sent_at,
            ttft=ttft,
            error=error,
        )


def finish(
    gw: GatewayState,
    call: Call,
    *,
    variant: str,
    model: str | None = None,
    status: int,
    usage: dict | None,
    answer: str | None,
    upstream_s: float,
    ttft: float | None = None,
    error: str | None = None,
) -> None:
    """Metrics, quota reconciliation and the request log record; nothing here delays the client."""
    total_s = time.perf_counter() - call.started
    usage = dict(usage or {})
    prompt_tokens = usage.get("prompt_tokens")
    if prompt_tokens is None:
        prompt_tokens = tokens.estimate_prompt_tokens(call.parsed) if status == 200 else 0
    completion_tokens = usage.get("completion_tokens") or 0
    usage.update(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )
    m = gw.metrics.for_variant(call.route, variant)
    m.count(status)
    m.latency.observe(total_s)
    m.added_latency.observe(max(0.0, total_s - upstream_s))
    if ttft is not None:
        m.ttft.observe(ttft)
    m.prompt_tokens.inc(prompt_tokens)
    m.completion_tokens.inc(completion_tokens)
    if call.reservation is not None:
        gw.limiter.reconcile(call.reservation, actual_tokens=usage["total_tokens"])
    record = {
        "request_id": call.request_id,
        "key_id": call.key.id,
        "route": call.route,
        "variant": variant,
        "model": model,
        "kind": call.kind,
        "stream": call.parsed.stream,
        "status": status,
        "prompt": tokens.prompt_text(call.parsed),
        "answer": answer,
        "usage": usage,
        "latency_ms": round(total_s * 1000, 3),
        "ttft_ms": round(ttft * 1000, 3) if ttft is not None else None,
        "started_at": call.started_wall,
        "finished_at": time.time(),
        "retrieved_ids": call.rag.retrieved_ids if call.rag is not None else [],
        "error": error,
    }
    if not gw.request_log.emit(record):
        gw.metrics.request_log_dropped.inc()
        logger.error("request log queue full; record dropped", extra={"route": call.route})
