"""The retriever's calls to a Qdrant server carry the W3C ``traceparent`` of the span they are made in, as every
call between the platform's services does (with tracing on; the gateway -> retriever half of a RAG trace is
``tests/test_tracing.py``).

The probe runs in a process of its own (tracing is configured once per process). The Qdrant server is a stand-in
that records the headers it gets: what is tested is what the retriever sends, not what Qdrant does with it.
"""

import json
import os
import subprocess
import sys

import pytest

from llmops_testkit.otlp import OtlpReceiver

PROBE = """
import asyncio, json, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from llmops_common import tracing
from llmops_retriever.store.qdrant import QdrantStore

seen = []


class Qdrant(BaseHTTPRequestHandler):
    def do_GET(self):
        seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
        if self.path.startswith("/collections"):
            body = {"result": {"collections": []}, "status": "ok", "time": 0.0}
        else:  # the client's version check
            body = {"title": "qdrant", "version": "1.15.0"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Qdrant)
threading.Thread(target=server.serve_forever, daemon=True).start()
assert tracing.configure_tracing("llmops-retriever")
store = QdrantStore(url=f"http://127.0.0.1:{server.server_address[1]}")


async def main():
    with tracing.span("probe"):
        sent = tracing.log_fields()
        await store.ping()
    await store.aclose()
    return sent


sent = asyncio.run(main())
server.shutdown()
print(json.dumps({"sent": sent, "seen": [s for s in seen if s["path"].startswith("/collections")]}))
"""


@pytest.fixture(scope="module")
def receiver():
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def test_a_call_to_the_qdrant_server_carries_the_traceparent(receiver, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **receiver.env()}
    if "PYTHONPATH" in os.environ:  # a checkout's sources first, as the suite runs them
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    (call,) = result["seen"]
    sent = result["sent"]
    version, trace_id, parent_id, _flags = call["headers"]["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", sent["trace_id"], sent["span_id"])
