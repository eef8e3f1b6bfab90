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
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import orjson
from pydantic import ValidationError
from starlette.types import Scope

from llmops_common import tracing
from llmops_common.errors import APIError, validation_error
from llmops_common.requests import parse_json_object
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.prompts.stage import PromptStage, apply_plain
from llmops_gateway.proxy import caps, genai, tokens
from llmops_gateway.proxy.accounting import Accounting, Call, Outcome
from llmops_gateway.proxy.connection import UpstreamError
from llmops_gateway.proxy.quota import QuotaCheck
from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest
from llmops_gateway.proxy.sse import StreamTap, stream_error, usage_of
from llmops_gateway.proxy.upstream import UpstreamResponse, Upstreams
from llmops_gateway.quotas.headers import reservation_headers
from llmops_gateway.rag.service import Retrieval, context_tokens
from llmops_gateway.rag.sources import sse_event
from llmops_gateway.rag.stream import DoneInjector
from llmops_gateway.routing import rules, selection
from llmops_gateway.routing.schemas import Variant
from llmops_gateway.routing.service import RouteTable

logger = logging.getLogger(__name__)

PATHS = {"chat": "/chat/completions", "text": "/completions"}
MODELS = {"chat": ChatCompletionRequest, "text": CompletionRequest}


@dataclass(slots=True)
class Reply:
    """A response: ``body`` whole, or ``stream`` (an async generator; closing it early counts as the client leaving)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncGenerator[bytes] | None = None


@dataclass(slots=True)
class Admitted:
    """A request past every check, ready for its upstream: its call, the payload as the upstream will see it
    (prompt and context applied), its variants (first choice first) and its ``max_tokens`` cap, if one applied."""

    call: Call
    payload: dict
    variants: list[Variant]
    capped: ChatCompletionRequest | CompletionRequest | None


@dataclass(slots=True, frozen=True)
class BatchLine:
    """A request sent by a batch worker for the key that made the batch (headers ``x-llmops-batch-key`` and
    ``x-llmops-batch-id``, with the workers' token as the bearer token)."""

    key_id: str
    batch_id: str

    @classmethod
    def of(cls, headers) -> "BatchLine | None":
        key_id = headers.get("x-llmops-batch-key")
        if key_id is None:
            return None
        return cls(key_id=key_id[:64], batch_id=(headers.get("x-llmops-batch-id") or "")[:64])


async def authenticate(
    authenticator: KeyAuthenticator, authorization: str | None, batch: BatchLine | None, scope: Scope | None = None
):
    """``scope``: the request's, whose client address counts failed keys."""
    if batch is None:
        return await authenticator.authenticate(authorization, scope)
    return await authenticator.authenticate_batch(authorization, batch.key_id)


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
        prompts: PromptStage,
        upstreams: Upstreams,
        accounting: Accounting,
        max_body_bytes: int,
        default_max_tokens: int = 512,
    ) -> None:
        self._default_max_tokens = default_max_tokens  # a rule's max_tokens bounds read this when none is given
        self.max_body_bytes = max_body_bytes  # read by the server side, which reads the body
        self._authenticator, self._routes, self._quota = authenticator, routes, quota
        self._retrieval, self._upstreams, self._accounting = retrieval, upstreams, accounting
        self._prompts = prompts

    async def run(
        self,
        *,
        kind: str,
        request_id: str,
        authorization: str | None,
        body: bytes,
        batch: BatchLine | None = None,
        request_headers: Mapping[str, str] | None = None,
        scope: Scope | None = None,
    ) -> Reply:
        """Raises ``APIError`` for a refusal or a failed upstream (already accounted). ``request_headers``: for
        routing rules that match on one (names case-insensitive, as Starlette's ``Headers``)."""
        admitted = await self.admit(
            kind=kind,
            request_id=request_id,
            authorization=authorization,
            body=body,
            batch=batch,
            request_headers=request_headers,
            scope=scope,
        )
        call, parsed = admitted.call, admitted.call.parsed
        try:
            sending = self._upstreams.send(
                route=call.route,
                variants=admitted.variants,
                path=PATHS[kind],
                payload=admitted.payload,
                request_id=request_id,
            )
            if tracing.on:  # the call to the model is a span of its own, current while it runs
                call.span = genai.start(kind=kind, route=call.route, parsed=parsed)
                sending = genai.within(call.span, sending)
            upstream = await sending
        except APIError as exc:
            self._accounting.finish(call, Outcome(exc.status, error=exc.message))
            raise
        except asyncio.CancelledError:
            # The client left: the upstream may have had the prompt, so charge it, as for an abandoned stream.
            usage = {"prompt_tokens": tokens.estimate_prompt_tokens(parsed)}
            self._accounting.finish(call, Outcome(499, usage=usage, error="client disconnected"))
            raise
        headers = upstream.passthrough_headers()
        headers["x-llmops-variant"] = upstream.variant.name
        headers.update(reservation_headers(call.reservation))
        if admitted.capped is not None:
            headers["x-llmops-max-tokens-capped"] = str(admitted.capped.max_tokens)
        if call.rule is not None:
            headers["x-llmops-rule"] = call.rule
        if call.rag is not None:
            headers["x-llmops-rag"] = "context" if call.rag.context else "no-context"
        if parsed.stream and upstream.response.status == 200:
            headers.setdefault("content-type", "text/event-stream")
            return Reply(200, headers, stream=self._relay(call, upstream))
        return await self._respond_whole(call, upstream, headers)

    async def admit(
        self,
        *,
        kind: str,
        request_id: str,
        authorization: str | None,
        body: bytes,
        batch: BatchLine | None = None,
        request_headers: Mapping[str, str] | None = None,
        scope: Scope | None = None,
    ) -> Admitted:
        """Every stage before the upstream: the request authenticated, routed, its quota reserved, its variants
        chosen and its prompt built (registered prompt, retrieved context). Raises ``APIError`` for a refusal
        (already accounted). An admitted call must end in ``Accounting.finish`` (``run``, or a batch worker's
        engine settling the line)."""
        started, started_wall = time.perf_counter(), time.time()
        route = "-"  # refusals are counted under a configured route only, never under any name a client sends
        try:
            key = await authenticate(self._authenticator, authorization, batch, scope)
            payload, parsed = parse(body, kind)
            spec = await self._routes.get(parsed.model)
            if spec is None:
                raise APIError(404, f"The model '{parsed.model}' does not exist", code="model_not_found")
            route = parsed.model
            if not key.may_use(route):
                raise APIError(403, f"this key may not use model '{route}'", code="model_not_allowed")
            capped = None
            if (cap := caps.cap_for(key, spec)) is not None and (capped := caps.apply(payload, parsed, cap)):
                parsed = capped
            rag = self._retrieval.plan(payload, spec.rag)
            reservation = await self._quota.reserve(key, route, spec, parsed, extra_tokens=context_tokens(rag))
        except APIError as exc:  # refused before any upstream: still a request, for error rates
            self._accounting.refused(route, exc.status)
            raise
        call = Call(request_id, kind, key, route, parsed, reservation, started, started_wall)
        if tracing.on:
            call.trace_id = tracing.current_trace_id()
        if batch is not None:
            call.batch_id = batch.batch_id
        try:
            # The variant first: its prompt (an experiment's arm may be a prompt version) decides the text. Rules
            # judge the prompt with the context it may add, as the quota did.
            rule = self._rule(spec, key, request_headers, parsed, context_tokens(rag)) if spec.rules else None
            call.rule = rule.name if rule is not None else None
            if rule is not None:
                variants = rules.candidates(spec, rule)
            else:
                variants = selection.candidates(route, spec, user=selection.assignment_unit(parsed.user, key.id))
            prompt = await self._prompts.choose(route, spec, variants[0], retrieves=rag is not None)
            if prompt is not None:
                call.prompt_name, call.prompt_version = prompt.name, prompt.version
            if rag is not None:
                call.rag = await self._retrieval.retrieve(
                    rag, payload, prompt=prompt, kind=kind, route=route, request_id=request_id
                )
            elif prompt is not None:
                apply_plain(payload, kind, prompt)
            if prompt is not None:
                call.parsed = parsed = MODELS[kind].model_validate(payload)  # the prompt as the upstream sees it
            if parsed.stream:
                payload["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
        except APIError as exc:
            self._accounting.finish(call, Outcome(exc.status, error=exc.message))
            raise
        except asyncio.CancelledError:
            self._accounting.finish(call, Outcome(499, error="client disconnected"))  # nothing reached a model
            raise
        return Admitted(call, payload, variants, capped)

    def settle(self, call: Call, outcome: Outcome) -> None:
        """Ends an admitted call that no upstream of this gateway answered (a batch worker's engine did)."""
        self._accounting.finish(call, outcome)

    def withdraw(self, call: Call) -> None:
        """Gives back an admitted call's reservation, unaccounted: it will be admitted again elsewhere."""
        self._quota.reconcile(call.reservation, actual_tokens=0, actual_cost=0)

    def check_batch_token(self, authorization: str | None) -> None:
        self._authenticator.check_batch_token(authorization)

    def _rule(self, spec, key, headers: Mapping[str, str] | None, parsed, extra_tokens: int) -> rules.Rule | None:
        return rules.first_match(
            spec.rules,
            team=key.team,
            tier=key.tier,
            headers=headers or {},
            prompt_tokens=tokens.estimate_prompt_tokens(parsed) + extra_tokens,
            max_tokens=tokens.completion_budget(parsed, default=self._default_max_tokens),
        )

    async def _respond_whole(self, call: Call, upstream: UpstreamResponse, headers: dict[str, str]) -> Reply:
        response, variant = upstream.response, upstream.variant
        outcome = Outcome(
            response.status,
            variant=variant.name,
            model=variant.model,
            version=upstream.model_version(),
            base_url=variant.base_url,
        )
        try:
            body = await response.read()
        except (UpstreamError, asyncio.CancelledError) as exc:
            broke = isinstance(exc, UpstreamError)
            outcome.status, outcome.error = (502, repr(exc)) if broke else (499, "client disconnected")
            if not broke:  # the upstream had the prompt
                outcome.usage = {"prompt_tokens": tokens.estimate_prompt_tokens(call.parsed)}
            self._account(call, upstream, outcome, failure="broken" if broke else None, abandoned=not broke)
            if broke:
                raise APIError(
                    502,
                    f"upstream {variant.name!r} failed mid-response",
                    code="upstream_error",
                    headers={"x-llmops-variant": variant.name},
                ) from None
            raise
        if response.status != 200:
            self._account(call, upstream, outcome)
            return Reply(response.status, headers, body)
        try:
            document = orjson.loads(body)
            outcome.usage = usage_of(document.get("usage"))
            choices = document.get("choices") or [{}]
            choice = choices[0]
            if call.span is not None:
                outcome.finish_reasons = [
                    c["finish_reason"]
                    for c in choices
                    if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
                ]
            message = choice.get("message") or {}
            outcome.answer = message.get("content") if call.kind == "chat" else choice.get("text")
            if call.rag is not None:  # the retrieved sources travel with the answer (an extension field)
                body = orjson.dumps({**document, "sources": call.rag.sources})
        except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError, KeyError):
            # A 200 that is no OpenAI answer (an HTML error page, a cut or foreign body) would break the client's
            # parser: it is the upstream's failure, answered as one and counted against its circuit.
            logger.warning("upstream answer is not OpenAI JSON", extra={"variant": variant.name, "body": body[:300]})
            outcome.status, outcome.answer = 502, None
            outcome.error = "upstream answer is not OpenAI JSON"
            outcome.usage = {"prompt_tokens": tokens.estimate_prompt_tokens(call.parsed)}  # it had the prompt
            self._account(call, upstream, outcome, failure="invalid_answer")
            raise APIError(
                502,
                f"upstream {variant.name!r} answered with no valid completion",
                code="upstream_invalid_response",
                headers={"x-llmops-variant": variant.name},
            ) from None
        self._account(call, upstream, outcome)
        return Reply(response.status, headers, body)

    def _account(
        self, call: Call, upstream: UpstreamResponse, outcome: Outcome, *, failure: str | None = None, abandoned=False
    ) -> None:
        """Ends an exchange with the upstream (its connection pooled again, or closed) and accounts for it."""
        upstream.response.release()
        if upstream.response.status == 200:
            self._upstreams.settle(upstream, failure=failure, abandoned=abandoned)
        outcome.upstream_s = time.perf_counter() - upstream.sent_at
        self._accounting.finish(call, outcome)

    async def _relay(self, call: Call, upstream: UpstreamResponse):
        """Yields the upstream's SSE bytes as they arrive, unbuffered; accounts for them when the stream ends."""
        tap, variant = StreamTap(), upstream.variant
        failure = None  # the breaker's failure kind, when the stream broke
        outcome = Outcome(
            200, variant=variant.name, model=variant.model, version=upstream.model_version(), base_url=variant.base_url
        )
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
            outcome.status, failure, event = stream_error(exc)
            outcome.error = repr(exc)
            logger.warning("upstream stream broke", extra={"variant": variant.name, "error": outcome.error})
            yield event
        except (asyncio.CancelledError, GeneratorExit):
            outcome.status, outcome.error = 499, "client disconnected"  # 499: nginx's "client closed request"
            raise
        finally:
            self._upstreams.settle(upstream, failure=failure, abandoned=outcome.status == 499)
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
            outcome.finish_reasons = tap.finish_reasons
            outcome.upstream_s = time.perf_counter() - upstream.sent_at
            self._accounting.finish(call, outcome)
