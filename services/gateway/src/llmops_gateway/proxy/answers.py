"""The upstream's answer relayed to the client and accounted: whole (read, checked as OpenAI JSON, RAG sources
added) or streamed (SSE bytes passed on as they arrive, usage tapped from them). Either way the exchange ends with
the upstream settled (its breaker told, its connection pooled or closed) and the call accounted exactly once."""

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import orjson

from llmops_common.errors import APIError
from llmops_gateway.proxy import tokens
from llmops_gateway.proxy.accounting import Accounting, Call, Outcome
from llmops_gateway.proxy.connection import UpstreamError, UpstreamTooLarge
from llmops_gateway.proxy.sse import StreamTap, stream_error, usage_of
from llmops_gateway.proxy.upstream import UpstreamResponse, Upstreams
from llmops_gateway.rag.sources import sse_event
from llmops_gateway.rag.stream import DoneInjector

logger = logging.getLogger(__name__)

# A whole answer's failure kind (for the breaker's metric): the error code and what the client is told it was.
_BAD_ANSWERS = {
    "invalid_answer": ("upstream_invalid_response", "with no valid completion"),
    "too_large": ("upstream_response_too_large", "over the size limit"),  # GATEWAY_UPSTREAM_MAX_ANSWER_BYTES
}


@dataclass(slots=True)
class Reply:
    """A response: ``body`` whole, or ``stream`` (an async generator; closing it early counts as the client leaving)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncGenerator[bytes] | None = None


class Answers:
    def __init__(self, upstreams: Upstreams, accounting: Accounting, *, max_event_bytes: int = 0) -> None:
        self._upstreams, self._accounting = upstreams, accounting
        self._max_event_bytes = max_event_bytes  # the largest SSE event a stream may have (0: no limit)

    async def whole(self, call: Call, upstream: UpstreamResponse, headers: dict[str, str]) -> Reply:
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
        except UpstreamTooLarge as exc:  # cut at the limit (memory), its connection closed
            logger.warning("upstream answer over the size limit", extra={"variant": variant.name, "error": str(exc)})
            raise self._bad_answer(call, upstream, outcome, "too_large", str(exc)) from None
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
            outcome.answer = None
            raise self._bad_answer(
                call, upstream, outcome, "invalid_answer", "upstream answer is not OpenAI JSON"
            ) from None
        self._account(call, upstream, outcome)
        return Reply(response.status, headers, body)

    def _bad_answer(
        self, call: Call, upstream: UpstreamResponse, outcome: Outcome, failure: str, error: str
    ) -> APIError:
        """A whole answer the client cannot be given: the upstream's failure (``failure``, against its circuit),
        accounted with the prompt it had; the 502 to raise."""
        code, said = _BAD_ANSWERS[failure]
        outcome.status, outcome.error = 502, error
        outcome.usage = {"prompt_tokens": tokens.estimate_prompt_tokens(call.parsed)}
        self._account(call, upstream, outcome, failure=failure)
        name = upstream.variant.name
        return APIError(502, f"upstream {name!r} answered {said}", code=code, headers={"x-llmops-variant": name})

    def _account(
        self, call: Call, upstream: UpstreamResponse, outcome: Outcome, *, failure: str | None = None, abandoned=False
    ) -> None:
        """Ends an exchange with the upstream (its connection pooled again, or closed) and accounts for it."""
        upstream.response.release()
        if upstream.response.status == 200:
            self._upstreams.settle(upstream, failure=failure, abandoned=abandoned)
        outcome.upstream_s = time.perf_counter() - upstream.sent_at
        self._accounting.finish(call, outcome)

    async def stream(self, call: Call, upstream: UpstreamResponse):
        """Yields the upstream's SSE bytes as they arrive, unbuffered; accounts for them when the stream ends."""
        tap, variant = StreamTap(self._max_event_bytes), upstream.variant
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
            outcome.status, failure, event = stream_error(exc, mid_event=tap.cut())
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
