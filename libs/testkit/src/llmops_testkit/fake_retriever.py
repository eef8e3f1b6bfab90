"""A retriever that answers every search with fixed chunks: for tests about what the gateway does with the chunks
(prompt rendering), where a real retriever would only add its embedding model's start-up time."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from llmops_cli.procs import free_port

READ_TOKEN = "fake-retriever-read-token"


class FakeRetriever:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.queries: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def gateway_env(self) -> dict[str, str]:
        return {"GATEWAY_RETRIEVER_URL": self.url, "GATEWAY_RETRIEVER_TOKEN": READ_TOKEN}

    def start(self) -> "FakeRetriever":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                query = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
                fake.queries.append(query)
                hits = [
                    {"id": f"chunk-{i}", "document_id": f"doc-{i}", "chunk_index": 0, "score": 1.0 - i / 10, "text": t}
                    for i, t in enumerate(fake.texts[: query.get("top_k", 1)])
                ]
                body = json.dumps({"data": hits, "hybrid": False, "took_ms": 0.1}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        return Handler
