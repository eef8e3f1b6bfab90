"""An OTLP/HTTP trace receiver on loopback: what a collector would get from the services, decoded.

It accepts ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` (protobuf, gzip or not), the way the OTel
SDK's OTLP/HTTP exporter sends it, decodes it with ``opentelemetry-proto`` and keeps every span as a ``Span``.
Point a service at it with ``env()``: ``OTEL_EXPORTER_OTLP_ENDPOINT`` and a short batch delay.
"""

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llmops_testkit.processes import free_port

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass
class Span:
    service: str
    name: str
    kind: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None
    attributes: dict = field(default_factory=dict)
    status_code: int = 0  # 0 unset, 1 ok, 2 error
    status_message: str = ""
    events: list[dict] = field(default_factory=list)  # {"name": ..., "attributes": {...}} (exceptions recorded)
    resource: dict = field(default_factory=dict)  # the exporting process's resource attributes


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        service=resource.get("service.name", ""),
                        name=span.name,
                        kind=KINDS.get(span.kind, str(span.kind)),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        status_code=span.status.code,
                        status_message=span.status.message,
                        events=[
                            {"name": event.name, "attributes": {kv.key: _value(kv.value) for kv in event.attributes}}
                            for event in span.events
                        ],
                        resource=resource,
                    )
                )
    return spans


class OtlpReceiver:
    """``start()``, point services at ``endpoint``, then ``wait_for`` the spans a test expects."""

    def __init__(self, *, decode_spans: bool = True) -> None:
        """``decode_spans=False``: count what arrives without decoding it (a benchmark's sink: decoding is the
        collector's work, not the exporter's)."""
        self.port = free_port()
        self.decode_spans = decode_spans
        self.spans: list[Span] = []
        self.requests = 0  # export requests received
        self.bytes = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, service_name: str | None = None) -> dict[str, str]:
        """What a service needs to export here promptly (the batch processor's delay 100 ms instead of 5 s)."""
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        if service_name:
            env["OTEL_SERVICE_NAME"] = service_name
        return env

    def start(self) -> "OtlpReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                spans = decode(body) if receiver.decode_spans else []
                with receiver._lock:
                    receiver.spans.extend(spans)
                    receiver.requests += 1
                    receiver.bytes += len(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="otlp-receiver").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def trace(self, trace_id: str) -> list[Span]:
        return [span for span in self.snapshot() if span.trace_id == trace_id]

    def wait_for(self, predicate, *, timeout_s: float = 10.0) -> list[Span]:
        """Waits until ``predicate(spans)`` is true; returns the spans then (AssertionError with them if never)."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.snapshot()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans never matched; got {[(s.service, s.name) for s in spans]}")
            time.sleep(0.05)
