"""A deadline on a request's head: a client that trickles its request line and headers (slowloris) is cut off.

uvicorn bounds the silence between requests (keep-alive) but not the time a request takes to send its head, so
a client sending a header byte every few seconds keeps its connection, a file descriptor and its buffers for
ever; a few thousand such clients exhaust the descriptors and the service refuses everyone (measured in
bench/slowloris_bench.py). Here a request's head must be complete within ``header_timeout_s`` of its first
byte (the first request: of the connection opening), else the connection is closed.

On public APIs only: uvicorn builds each connection's protocol by calling what ``Config(http=...)`` names with
its own keyword arguments. ``HeadDeadlineProtocol`` is what it builds here: it builds uvicorn's own HTTP protocol
(``inner``) with those arguments untouched, hands it every ``asyncio.Protocol`` event, and feeds the same bytes
to an httptools parser of its own whose only callbacks say where a request's head begins and ends. Of the inner
protocol (the class ``--http httptools`` names) nothing else is used. The price is a second parse of each
request's bytes, no URL, header or body callbacks and no timer for a head that arrives whole: ~1.5 µs a request
on top of the ~27 µs of uvicorn's protocol and a trivial app (1.05x), ~1% of a proxied request's CPU.

What it cannot see is the inner protocol's state: whether an answer is still being written. So the 408 is written
only where no answer can be going out, on the connection's first request; a later request's head that misses
its deadline gets the connection closed with nothing written. A kept-alive client sees its idle connection
closed, which HTTP clients already handle; a pipelining client never gets a 408 spliced into an answer.
"""

import asyncio
import functools
import logging
from collections.abc import Callable

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"

logger = logging.getLogger(__name__)


def http_protocol(header_timeout_s: float) -> Callable[..., asyncio.Protocol]:
    """What to pass as uvicorn's ``http``: its httptools protocol, behind a head deadline unless it is 0."""
    if header_timeout_s == 0:
        return HttpToolsProtocol
    # A partial of module-level names: uvicorn pickles its config into each worker process.
    return functools.partial(HeadDeadlineProtocol, inner=HttpToolsProtocol, header_timeout_s=header_timeout_s)


class HeadDeadlineProtocol(asyncio.Protocol):
    """uvicorn's protocol ``inner`` (built with uvicorn's arguments) with a deadline on each request's head."""

    def __init__(self, *args, inner: Callable[..., asyncio.Protocol], header_timeout_s: float, **kwargs) -> None:
        self._inner = inner(*args, **kwargs)
        self._timeout_s = header_timeout_s
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        # As uvicorn's own parser: bytes after a `Connection: close` request are no error.
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._heads_begun = 0
        self._head_incomplete = False

    # asyncio.Protocol: each event goes to the inner protocol; data is followed first.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._inner.connection_made(transport)
        self._start_deadline()  # the first request's head is timed from the connection opening

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            # Bytes after an upgrade that was not taken (a taken one hands the transport to the WebSocket protocol)
            # or after bytes the parser refused: uvicorn's parser, with the same rules, answers them 400 and closes.
            # Should an inner protocol keep such a connection, a deadline nothing ends still closes it.
            self._start_deadline()
        else:
            try:
                self._parser.feed_data(data)
            except (httptools.HttpParserUpgrade, httptools.HttpParserError):
                self._parser = None
            # A kept-alive connection's next request: its head is timed from its first byte, in these bytes (the
            # keep-alive timer covered the silence before it). Set here, not as the head begins: a head that
            # arrives whole costs no timer. The first request keeps the deadline set when the connection opened.
            if self._head_incomplete:
                self._start_deadline()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        self._parser = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # httptools callbacks of the parser above

    def on_message_begin(self) -> None:
        self._heads_begun += 1
        self._head_incomplete = True

    def on_headers_complete(self) -> None:
        self._head_incomplete = False
        self._stop_deadline()

    def _start_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = self._loop.call_later(self._timeout_s, self._head_timed_out)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self._transport is None or self._transport.is_closing():
            return
        if self._heads_begun <= 1 and self._parser is not None:  # the first request: nothing is being answered
            self._transport.write(_TIMEOUT_RESPONSE)
        logger.info("request head not complete within %gs: connection closed", self._timeout_s)
        self._transport.close()
