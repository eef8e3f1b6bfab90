"""OpenTelemetry traces, off unless an OTLP endpoint is configured.

The standard OTel variables turn it on: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
and ``OTEL_SERVICE_NAME``; ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` keep it off whatever else
is set. Spans go out over OTLP/HTTP (protobuf) through a ``BatchSpanProcessor``: a request never waits on the
collector. The exporter reads the rest of its configuration (headers, timeout, certificate, batch sizes) from the
standard variables itself.

Off, nothing is installed: no provider, no middleware, no header injection, no log fields; every helper here
returns at its first line. Hot paths test ``tracing.on`` (a plain module attribute, set once per process) before
calling anything: on 2 busy cores even a call that returns at once costs about a microsecond, and OTel's no-op API
several.

W3C ``traceparent`` (and ``tracestate``) come in through ``TracingMiddleware`` and go out through
``inject_headers`` (raw header lists), ``aiohttp_trace_configs`` and ``httpx_event_hooks`` (the clients the
services use), and ``carrier`` / ``context_from`` (Celery task headers).
"""

import logging
import os
from contextlib import nullcontext

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

_tracer: trace.Tracer | None = None  # set once per process by ``configure_tracing`` when tracing is on
on = False  # the same, as a flag for hot paths: ``if tracing.on: ...``


def wanted(environ=os.environ) -> bool:
    """Whether the OTel environment asks for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure_tracing(service_name: str) -> bool:
    """Installs a tracer provider exporting over OTLP/HTTP if ``wanted()``; returns whether tracing is on.

    ``service_name`` is the default of ``OTEL_SERVICE_NAME``. Called by each process's entry point (app factory,
    worker); a second call in the same process keeps the first provider (OTel allows one per process).
    """
    global _tracer, on
    if _tracer is not None:
        return True
    if not wanted():
        return False
    # Imported only here: with tracing off the SDK and the exporter are never loaded.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) overrides the service's own name.
    named = "service.name" in OTELResourceDetector().detect().attributes
    resource = Resource.create({} if named else {"service.name": service_name})
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol != "http/protobuf":
        # One exporter keeps the images small (no gRPC stack); collectors take OTLP/HTTP on 4318.
        logger.warning("only OTLP over HTTP (http/protobuf) is exported; %s is ignored", protocol)
    provider = TracerProvider(resource=resource)  # flushes its spans at exit (atexit)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("llmops")
    on = True
    logger.info("tracing on: spans exported over OTLP", extra={"service": resource.attributes["service.name"]})
    return True


def enabled() -> bool:
    return _tracer is not None


def tracer() -> trace.Tracer | None:
    """The platform's tracer, or None with tracing off (callers then skip their span altogether)."""
    return _tracer


def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, attributes=None, context=None):
    """A context manager: a span, current inside it, for work outside a request (a worker's job, a background
    delivery); ``context`` a remote parent from ``context_from``. Nothing with tracing off."""
    if _tracer is None:
        return nullcontext()
    return _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes)


def set_attributes(attributes: dict) -> None:
    """Adds attributes to the current span (a request's server span); nothing with tracing off."""
    if _tracer is not None:
        trace.get_current_span().set_attributes(attributes)


def log_fields() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span, for a log line; empty with tracing off or no span."""
    if _tracer is None:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


def current_trace_id() -> str | None:
    """The current trace's id (32 hex characters), or None: what the request-log record keeps."""
    return log_fields().get("trace_id")


def inject_headers(headers: list[tuple[bytes, bytes]]) -> None:
    """Appends ``traceparent`` (and ``tracestate``) of the current span to a raw header list."""
    if _tracer is None:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    headers.extend((name.encode(), value.encode("latin-1")) for name, value in carrier.items())


def carrier() -> dict[str, str]:
    """The current context as W3C headers (for a Celery task's headers or kwargs); empty with tracing off."""
    result: dict[str, str] = {}
    if _tracer is not None:
        propagate.inject(result)
    return result


def context_from(headers) -> otel_context.Context | None:
    """The remote parent carried by ``headers`` (a mapping with ``traceparent``), or None."""
    if _tracer is None or not headers:
        return None
    return propagate.extract(headers)


def aiohttp_trace_configs() -> list:
    """For ``aiohttp.ClientSession(trace_configs=...)``: adds ``traceparent`` to every request; [] when off."""
    if _tracer is None:
        return []
    import aiohttp

    async def on_request_start(session, trace_config_ctx, params) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        params.headers.update(carrier)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    return [config]


def httpx_event_hooks() -> dict:
    """For ``httpx.AsyncClient(event_hooks=...)``: adds ``traceparent`` to every request; {} when off."""
    if _tracer is None:
        return {}

    async def add_traceparent(request) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        request.headers.update(carrier)

    return {"request": [add_traceparent]}


def flush() -> None:
    """Exports the spans waiting in the batch processor now (a worker process about to be replaced)."""
    if _tracer is not None:
        provider = trace.get_tracer_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush(5_000)


# Probes and scrapes come every few seconds from machines, not users: spans for them would drown the traces.
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_PROPAGATED = (b"traceparent", b"tracestate")


class TracingMiddleware:
    """A server span per HTTP request, child of the caller's ``traceparent`` when one came in.

    Named ``METHOD /route/{template}`` once the router has matched (a path with ids in it would make every span
    name unique); the request id and the response status become attributes. Installed only with tracing on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _tracer is None or scope["path"] in _UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        carrier = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _PROPAGATED}
        parent = propagate.extract(carrier) if carrier else None
        method = scope["method"]
        span = _tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"], "url.scheme": scope["scheme"]},
        )
        status = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as exc:
            span.record_exception(exc)
            status = status or 500
            raise
        finally:
            _end_server_span(span, scope, method, status)
            otel_context.detach(token)


def _end_server_span(span: trace.Span, scope: Scope, method: str, status: int) -> None:
    template = getattr(scope.get("route"), "path", None)
    if template:
        span.update_name(f"{method} {template}")
        span.set_attribute("http.route", template)
    if request_id := scope.get("state", {}).get("request_id"):
        span.set_attribute("llmops.request_id", request_id)
    if status:
        span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(StatusCode.ERROR)
    span.end()
