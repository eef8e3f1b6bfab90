"""The completion's span, with OpenTelemetry's GenAI semantic conventions (``gen_ai.*``).

One client span per call to a model (the upstream exchange and its fallbacks): started just before the upstream
is called, current while it is (so ``traceparent`` names it as the upstream's parent), ended by the accounting
stage with what the answer said: the model that answered, token counts and finish reasons (for a stream, at its
end). With tracing off nothing here runs (the pipeline tests ``tracing.on`` first).
"""

from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from llmops_common import tracing

OPERATIONS = {"chat": "chat", "text": "text_completion"}


def start(*, kind: str, route: str, parsed) -> trace.Span:
    """Called with tracing on only (``tracing.on``)."""
    tracer = tracing.tracer()
    operation = OPERATIONS[kind]
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": route,  # what the client asked for: the gateway's route
        "llmops.route": route,
        "llmops.stream": bool(parsed.stream),
    }
    for name, value in (
        ("gen_ai.request.max_tokens", getattr(parsed, "max_tokens", None)),
        ("gen_ai.request.temperature", getattr(parsed, "temperature", None)),
        ("gen_ai.request.top_p", getattr(parsed, "top_p", None)),
    ):
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[name] = value
    return tracer.start_span(f"{operation} {route}", kind=SpanKind.CLIENT, attributes=attributes)


async def within(span: trace.Span, coroutine):
    """Awaits ``coroutine`` with ``span`` current: what it sends carries the span as ``traceparent``. (A coroutine
    runs in the context it is awaited in, not the one it was made in.)"""
    with trace.use_span(span, end_on_exit=False):
        return await coroutine


def provider(base_url: str) -> str:
    """``gen_ai.provider.name``: "openai" for OpenAI's own API; every other upstream is an OpenAI-compatible
    server, on this platform vLLM (the inference service)."""
    host = urlsplit(base_url).hostname or ""
    return "openai" if host == "openai.com" or host.endswith(".openai.com") else "vllm"


def finish(
    span: trace.Span,
    *,
    status: int,
    variant: str,
    model: str | None,
    base_url: str | None,
    input_tokens: int,
    output_tokens: int,
    finish_reasons: list[str] | None,
    error: str | None,
) -> None:
    attributes: dict = {
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "llmops.variant": variant,
        "http.response.status_code": status,
    }
    if base_url:
        name = provider(base_url)
        attributes["gen_ai.provider.name"] = name
        attributes["gen_ai.system"] = name  # the attribute's name before semantic conventions 1.37
        attributes["server.address"] = urlsplit(base_url).hostname or ""
    if model:
        attributes["gen_ai.response.model"] = model
    if finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = finish_reasons
    span.set_attributes(attributes)
    if status >= 400 or error:
        span.set_attribute("error.type", str(status) if status >= 400 else "stream_error")
        span.set_status(StatusCode.ERROR, (error or "")[:200])
    span.end()
