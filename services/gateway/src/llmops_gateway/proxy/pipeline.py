"""One proxied completion as a pipeline of stages, each built once at start-up with only what it needs:

authenticate (keys) -> route (routing, RAG validation) -> reserve quota -> retrieve (RAG) -> call upstream
(fallbacks, breakers) -> relay the answer -> account and log.

Quota is reserved before retrieval so that a refused request costs the retriever nothing. The pipeline knows
nothing of the server in front of it: it takes the request's header, body and id, and hands back a ``Reply``.
Cancelling ``run`` (the client left) or closing a reply's stream is accounted like any other ending.
"""

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from llmops_common.errors import APIError, validation_error
from llmops_common.requests import parse_json_object
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.proxy import tokens
from llmops_gateway.proxy.accounting import Accounting, Call, Outcome
from llmops_gateway.proxy.client import UpstreamError
from llmops_gateway.proxy.quota import QuotaCheck
from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest
from llmops_gateway.proxy.sse import StreamTap
from llmops_gateway.proxy.upstream import UpstreamResponse, Upstreams
from llmops_gateway.quotas.headers import reservation_headers
from llmops_gateway.rag.service import Retrieval, context_tokens
from llmops_gateway.rag.sources import sse_event
from llmops_gateway.rag.stream import DoneInjector
from llmops_gateway.routing import selection
from llmops_gateway.routing.service import RouteTable

logger = logging.getLogger(__name__)

PATHS = {"chat": "/chat/completions", "text": "/completions"}
MODELS = {"chat": ChatCompletionRequest, "text": CompletionRequest}
_STREAM_BROKE = (
    b'data: {"error": {"message": "upstream stream interrupted", "type": "server_error", "code": "upstream_error"}}\n\n'
)


@dataclass(slots=True)
class Reply:
    """A response: ``body`` whole, or ``stream`` (an async generator; closing it early counts as the client leaving)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncGenerator[bytes] | None = None


def parse(body: bytes, kind: str) -> tuple[dict, ChatCompletionRequest | CompletionRequest]:
    """The payload as sent (every field passes through) and the fields the gateway reads, validated."""
    payload = parse_json_object(body)
    try:
        return payload, MODELS[kind].model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


class CompletionPipeline:
    def __init__(
        self,
        *,
        authenticator: KeyAuthenticator,
        routes: RouteTable,
        quota: QuotaCheck,
        retrieval: Retrieval,
        upstreams: Upstreams,
        accounting: Accounting,
        max_body_bytes: int,
    ) -> None:
        self.max_body_bytes = max_body_bytes  # read by the server side, which reads the body
        self._authenticator, self._routes, self._quota = authenticator, routes, quota
        self._retrieval, self._upstreams, self._accounting = retrieval, upstreams, accounting

    async def run(self, *, kind: str, request_id: str, authorization: str | None, body: bytes) -> Reply:
        """Raises ``APIError`` for a refusal or a failed upstream (already accounted)."""
        started, started_wall = time.perf_counter(), time.time()
        route = "-"  # refusals are counted under a configured route only, never under any name a client sends
        try:
            key = await self._authenticator.authenticate(authorization)
            payload, parsed = parse(body, kind)
            spec = await self._routes.get(parsed.model)
            if spec is None:
                raise APIError(404, f"The model '{parsed.model}' does not exist", code="model_not_found")
            route = parsed.model
            if not key.may_use(route):
                raise APIError(403, f"this key may not use model '{route}'", code="model_not_allowed")
            rag = self._retrieval.plan(payload, spec.rag)
            reservation = await self._quota.reserve(key, route, spec, parsed, extra_tokens=context_tokens(rag))
        except APIError as exc:  # refused before any upstream: still a request, for error rates
            self._accounting.refused(route, exc.status)
            raise
        call = Call(request_id, kind, key, route, parsed, reservation, started, started_wall)
        sent = False
        try:
            if rag is not None:
                call.rag = await self._retrieval.retrieve(rag, payload, kind=kind, route=route, request_id=request_id)
                call.parsed = parsed = MODELS[kind].model_validate(payload)  # the prompt as the upstream sees it
            if parsed.stream:
                payload["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
            variants = selection.candidates(route, spec, user=parsed.user or key.id)
            sent = True
            upstream = await self._upstreams.send(
                route=route, variants=variants, path=PATHS[kind], payload=payload, request_id=request_id
            )
        except APIError as exc:
            self._accounting.finish(call, Outcome(exc.status, error=exc.message))
            raise
        except asyncio.CancelledError:
            # The client left: if the upstream had the prompt, charge it, as for an abandoned stream.
            usage = {"prompt_tokens": tokens.estimate_prompt_tokens(parsed)} if sent else None
            self._accounting.finish(call, Outcome(499, usage=usage, error="client disconnected"))
            raise
        headers = upstream.passthrough_headers()
        headers["x-llmops-variant"] = upstream.variant.name
        headers.update(reservation_headers(reservation))
        if call.rag is not None:
            headers["x-llmops-rag"] = "context" if call.rag.context else "no-context"
        if parsed.stream and upstream.response.status == 200:
            headers.setdefault("content-type", "text/event-stream")
            return Reply(200, headers, stream=self._relay(call, upstream))
        return await self._respond_whole(call, upstream, headers)

    async def _respond_whole(self, call: Call, upstream: UpstreamResponse, headers: dict[str, str]) -> Reply:
        response, variant = upstream.response, upstream.variant
        outcome = Outcome(response.status, variant=variant.name, model=variant.model, version=upstream.model_version())
        try:
            body = await response.read()
        except (UpstreamError, asyncio.CancelledError) as exc:
            broke = isinstance(exc, UpstreamError)
            outcome.status, outcome.error = (502, repr(exc)) if broke else (499, "client disconnected")
            if not broke:  # the upstream had the prompt
                outcome.usage = {"prompt_tokens": tokens.estimate_prompt_tokens(call.parsed)}
            self._account(call, upstream, outcome)
            if broke:
                raise APIError(502, f"upstream {variant.name!r} failed mid-response", code="upstream_error") from None
            raise
        if response.status == 200:
            try:
                document = orjson.loads(body)
                outcome.usage = document.get("usage")
                choice = (document.get("choices") or [{}])[0]
                message = choice.get("message") or {}
                outcome.answer = message.get("content") if call.kind == "chat" else choice.get("text")
                if call.rag is not None:  # the retrieved sources travel with the answer (an extension field)
                    body = orjson.dumps({**document, "sources": call.rag.sources})
            except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
                logger.warning("upstream answer is not OpenAI JSON", extra={"variant": variant.name})
        self._account(call, upstream, outcome)
        return Reply(response.status, headers, body)

    def _account(self, call: Call, upstream: UpstreamResponse, outcome: Outcome) -> None:
        """Ends an exchange with the upstream (its connection pooled again, or closed) and accounts for it."""
        upstream.response.release()
        outcome.upstream_s = time.perf_counter() - upstream.sent_at
        self._accounting.finish(call, outcome)

    async def _relay(self, call: Call, upstream: UpstreamResponse):
        """Yields the upstream's SSE bytes as they arrive, unbuffered; accounts for them when the stream ends."""
        tap, variant = StreamTap(), upstream.variant
        outcome = Outcome(200, variant=variant.name, model=variant.model, version=upstream.model_version())
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
                if outcome.ttft is None and tap.chunks:
                    outcome.ttft = time.perf_counter() - call.started
            if sources:
                yield sources.finish()
        except UpstreamError as exc:
            outcome.status, outcome.error = 502, repr(exc)
            logger.warning("upstream stream broke", extra={"variant": variant.name, "error": outcome.error})
            yield _STREAM_BROKE
        except (asyncio.CancelledError, GeneratorExit):
            outcome.status, outcome.error = 499, "client disconnected"  # 499: nginx's "client closed request"
            raise
        finally:
            if tap.done:
                upstream.response.release()
            else:
                upstream.response.close()  # closing the connection is what tells the upstream to stop generating
            # Without the upstream's usage chunk (client left, stream broke) the prompt was still processed:
            # charge its estimate, or a client could read one chunk of a huge prompt and pay nothing.
            outcome.usage = tap.usage or {
                "prompt_tokens": tokens.estimate_prompt_tokens(call.parsed),
                "completion_tokens": tap.chunks,
            }
            outcome.answer = tap.answer
            outcome.upstream_s = time.perf_counter() - upstream.sent_at
            self._accounting.finish(call, outcome)
