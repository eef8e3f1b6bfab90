"""The worker's own HTTP endpoints (a Celery worker has none): ``/healthz``, ``/readyz`` (connected to the broker
and consuming) and ``/metrics``, for ``llmops up``, ``llmops status``, Kubernetes probes and Prometheus."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

READY = Gauge("llmops_trainer_worker_ready", "1 while the worker consumes jobs from the broker")


class HealthServer:
    def __init__(self, *, host: str, port: int, redis_url: str) -> None:
        self.ready = threading.Event()
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # probes every few seconds would drown the job logs
                pass

            def do_GET(self):
                if self.path == "/healthz":
                    return self._reply(200, b'{"status":"ok"}', "application/json")
                if self.path == "/readyz":
                    ok, detail = server.check()
                    body = b'{"status":"%s","checks":{"broker":"%s"}}' % (
                        b"ready" if ok else b"not ready", detail.encode()[:200].replace(b'"', b"'"))
                    return self._reply(200 if ok else 503, body, "application/json")
                if self.path == "/metrics":
                    return self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                return self._reply(404, b'{"error":{"message":"not found","type":"not_found_error"}}',
                                   "application/json")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True

    def check(self) -> tuple[bool, str]:
        if not self.ready.is_set():
            return False, "starting"
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            return False, f"error: {exc.__class__.__name__}"
        return True, "ok"

    def mark_ready(self) -> None:
        self.ready.set()
        READY.set(1)

    def start(self) -> "HealthServer":
        threading.Thread(target=self._server.serve_forever, name="worker-health", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
