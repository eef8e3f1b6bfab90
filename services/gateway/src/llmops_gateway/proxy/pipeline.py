"""One proxied completion as a pipeline of stages, each built once at start-up with only what it needs:

authenticate (keys) -> route (routing, RAG validation: the route's collections and the key's grant) -> reserve quota
-> retrieve (RAG) -> call upstream (fallbacks, breakers) -> relay the answer -> account and log.

Quota is reserved before retrieval so that a refused request costs the retriever nothing. The pipeline knows
nothing of the server in front of it: it takes the request's header, body and id, and hands back a ``Reply``.
Cancelling ``run`` (the client left) or closing a reply's stream is accounted like any other ending.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError
from starlette.types import Scope

from llmops_common import tracing
from llmops_common.errors import APIError, validation_error
from llmops_common.requests import parse_json_object
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.prompts.stage import PromptStage, apply_plain
from llmops_gateway.proxy import caps, genai, tokens
from llmops_gateway.proxy.accounting import Accounting, Call, Outcome
from llmops_gateway.proxy.answers import Answers, Reply
from llmops_gateway.proxy.quota import QuotaCheck
from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest
from llmops_gateway.proxy.upstream import Upstreams
from llmops_gateway.quotas.headers import reservation_headers
from llmops_gateway.rag.service import Retrieval, context_tokens
from llmops_gateway.routing import rules, selection
from llmops_gateway.routing.schemas import Variant
from llmops_gateway.routing.service import RouteTable

logger = logging.getLogger(__name__)

PATHS = {"chat": "/chat/completions", "text": "/completions"}
MODELS = {"chat": ChatCompletionRequest, "text": CompletionRequest}


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
        max_event_bytes: int = 0,
        default_max_tokens: int = 512,
    ) -> None:
        self._default_max_tokens = default_max_tokens  # a rule's max_tokens bounds read this when none is given
        self.max_body_bytes = max_body_bytes  # read by the server side, which reads the body
        self._authenticator, self._routes, self._quota = authenticator, routes, quota
        self._retrieval, self._upstreams, self._accounting = retrieval, upstreams, accounting
        self._prompts = prompts
        self._answers = Answers(upstreams, accounting, max_event_bytes=max_event_bytes)

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
            return Reply(200, headers, stream=self._answers.stream(call, upstream))
        return await self._answers.whole(call, upstream, headers)

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
            rag = self._retrieval.plan(payload, spec.rag, granted=key.allowed_collections)
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
