"""A Celery worker's own HTTP endpoints (a Celery worker has none): ``/healthz``, ``/readyz`` (consuming, and the
broker answers) and ``/metrics``, for ``llmops up``, ``llmops status``, Kubernetes probes and Prometheus.

One server for every worker (training, evaluation, batch shards): each passes how to reach its broker and the
registry its metrics live in.
"""

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Gauge, generate_latest

_NOT_FOUND = b'{"error":{"message":"not found","type":"not_found_error","code":null}}'


class WorkerHealthServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        ping_broker: Callable[[], object],
        ready_gauge: Gauge,
        registry: CollectorRegistry = REGISTRY,
        name: str = "worker-health",
    ) -> None:
        self._ping_broker, self._ready_gauge, self._name = ping_broker, ready_gauge, name
        self._ready = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # probes every few seconds would drown the worker's log
                pass

            def do_GET(self):
                if self.path == "/healthz":
                    return self._reply(200, b'{"status":"ok"}', "application/json")
                if self.path == "/readyz":
                    ok, detail = server.check()
                    body = orjson.dumps({"status": "ready" if ok else "not ready", "checks": {"broker": detail}})
                    return self._reply(200 if ok else 503, body, "application/json")
                if self.path == "/metrics":
                    return self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                return self._reply(404, _NOT_FOUND, "application/json")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True

    def check(self) -> tuple[bool, str]:
        if not self._ready.is_set():
            return False, "starting"
        try:
            self._ping_broker()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the broker is "not ready", named by its class
            return False, f"error: {exc.__class__.__name__}"
        return True, "ok"

    def mark_ready(self) -> None:
        self._ready.set()
        self._ready_gauge.set(1)

    def start(self) -> "WorkerHealthServer":
        threading.Thread(target=self._server.serve_forever, name=self._name, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
