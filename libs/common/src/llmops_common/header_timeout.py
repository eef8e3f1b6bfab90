"""A deadline on a request's head: a client that trickles its request line and headers (slowloris) is cut off.

uvicorn bounds the silence between requests (keep-alive) but not the time a request takes to send its head, so
a client sending a header byte every few seconds keeps its connection, a file descriptor and its buffers for
ever; a few thousand such clients exhaust the descriptors and the service refuses everyone (measured in
bench/slowloris_bench.py). Here a request's head must be complete within ``header_timeout_s`` of its first
byte (the first request: of the connection opening), else the connection gets 408 and is closed.

This subclasses uvicorn's httptools protocol, not a public API: uvicorn is pinned exactly in llmops-common's
metadata, and ``tests/test_header_timeout.py`` fails on any other uvicorn version.
"""

import asyncio
import logging

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PINNED_UVICORN = "0.54.0"
_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"

logger = logging.getLogger(__name__)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """``header_timeout_s``: 0 turns the deadline off (uvicorn's own behaviour)."""

    def __init__(self, *args, header_timeout_s: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # A kept-alive connection's next request: its head is timed from its first byte (the keep-alive timer
        # covered the silence before it). The first request keeps the deadline set when the connection opened.
        if self._head_deadline is None:
            self._start_head_deadline()

    def on_headers_complete(self) -> None:
        self._stop_head_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_deadline()
        super().connection_lost(exc)

    def _start_head_deadline(self) -> None:
        if self.header_timeout_s > 0:
            self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        # An answer may still be going out for an earlier pipelined request: then the connection is only closed.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_TIMEOUT_RESPONSE)
        logger.info("request head not complete within %gs: connection closed", self.header_timeout_s)
        self.transport.close()


def uvicorn_is_pinned() -> bool:
    return uvicorn.__version__ == PINNED_UVICORN
