"""One keep-alive connection to an upstream (or through a proxy's CONNECT tunnel to it): an asyncio protocol that
sends one request at a time, parses the answer with httptools, streams or buffers its body, and enforces the
silence and answer timeouts. The pool that owns connections is ``proxy.client.UpstreamClient``."""

import asyncio
import socket
from typing import TYPE_CHECKING

import httptools

from llmops_gateway.proxy.origins import Origin

if TYPE_CHECKING:  # the pool owns its connections; only the type is needed here
    from llmops_gateway.proxy.client import UpstreamClient

_PAUSE_ABOVE_BYTES = 256 * 1024  # a consumer this far behind stops the reading of its connection


class UpstreamError(Exception):
    """Base of every failure to get an answer from an upstream."""


class UpstreamConnectError(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamBroken(UpstreamError):
    """The connection dropped, or the upstream sent something that is not HTTP, before the answer ended."""


class UpstreamTooLarge(UpstreamError):
    """The answer (or one SSE event of it) is over its size limit: reading stopped there, the connection closed."""


class Response:
    """One upstream answer. Read it whole (``read``) or as it arrives (``chunks``), then ``release`` or ``close``."""

    __slots__ = ("_conn", "headers", "status")

    def __init__(self, conn: "Connection", status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._conn, self.status, self.headers = conn, status, headers

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self, max_bytes: int | None = None) -> bytes:
        """The whole body; ``UpstreamTooLarge`` past ``max_bytes`` (default: the client's ``max_answer_bytes``)."""
        conn = self._conn
        conn.limit_body(conn.client.max_answer_bytes if max_bytes is None else max_bytes)
        conn.reading_whole = True  # all of it is wanted: no point pausing the connection for it
        conn.resume()
        while conn.error is not None or not conn.complete:  # an answer cut at the limit may still read as complete
            await conn.wait_for_data()  # raises the exchange's error
        body = b"".join(conn.chunks)
        conn.chunks.clear()
        return body

    async def chunks(self, max_bytes: int | None = None):
        """Yields body bytes as they arrive; what came within ``max_bytes`` (default: the client's
        ``max_stream_bytes``), then ``UpstreamTooLarge``."""
        conn = self._conn
        conn.limit_body(conn.client.max_stream_bytes if max_bytes is None else max_bytes)
        while True:
            if conn.chunks:
                data = b"".join(conn.chunks)
                conn.chunks.clear()
                conn.buffered = 0
                conn.resume()
                yield data
            elif conn.complete and conn.error is None:
                return
            else:
                await conn.wait_for_data()

    def release(self) -> None:
        """Done with it: the connection goes back to the pool if the answer was read to its end, else closes."""
        self._conn.finish()

    def close(self) -> None:
        """Drops the connection: the way to tell an upstream to stop generating."""
        self._conn.abort()


class Connection(asyncio.Protocol):
    def __init__(self, client: "UpstreamClient", origin: Origin) -> None:
        self.client, self.origin = client, origin
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.holds_slot = False  # one of the client's in-flight slots, given back when the exchange ends
        self.parser = httptools.HttpResponseParser(self)  # parses message after message on a kept-alive connection
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.keep_alive = False  # known with the headers (httptools forgets it once the message is complete)
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future | None = None  # resolves to the Response when the headers are in
        self.chunks: list[bytes] = []
        self.buffered = 0  # bytes in ``chunks``
        self.body_bytes = 0  # of the answer's body, received so far
        self.body_limit = 0  # set by the reader (``limit_body``); 0: none
        self.complete = False
        self.received_any = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future | None = None
        self.last_data_at = 0.0
        self.sent_at = 0.0
        self.watchdog: asyncio.TimerHandle | None = None
        self.paused = False
        self.reading_whole = False

    # --- an exchange ---

    def send(self, raw: bytes) -> asyncio.Future:
        self.head = self.loop.create_future()
        self.sent_at = self.last_data_at = self.loop.time()
        self.watchdog = self.loop.call_at(self._next_check(), self._check_silence)
        self.client.outbox.send(self.transport, raw)
        return self.head

    def wait_for_data(self) -> asyncio.Future:
        if self.error is not None:
            raise self.error
        self.waiter = self.loop.create_future()
        return self.waiter

    def resume(self) -> None:
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def limit_body(self, max_bytes: int) -> None:
        """Fails the exchange with ``UpstreamTooLarge`` (the connection closed) once its body passes ``max_bytes``;
        at once when its content-length says it will. 0: no limit."""
        self.body_limit = max_bytes
        if not max_bytes:
            return
        length = next((value for name, value in self.headers if name == b"content-length"), b"")
        if self.body_bytes > max_bytes or (length.isdigit() and int(length) > max_bytes):
            self._too_large()

    def _too_large(self) -> None:
        # Set even on an answer that ended: a body over the limit is refused however fast it arrived.
        if self.error is None:
            self.error = UpstreamTooLarge(f"the upstream's answer is over {self.body_limit} bytes")
            self._wake()
        self.abort()  # stops the reading: nothing more of it is taken in

    def finish(self) -> None:
        if self.complete and self.keep_alive and not self.closed:
            self._end_exchange()
            self._reset()
            self.client.put_back(self)
        else:
            self.abort()

    def abort(self) -> None:
        self._end_exchange()
        if not self.closed:
            self.closed = True
            self.transport.abort()

    def _end_exchange(self) -> None:
        self._stop_watchdog()
        if self.holds_slot:
            self.holds_slot = False
            self.client.slots.release()

    def _stop_watchdog(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None

    def _next_check(self) -> float:
        due = self.last_data_at + self.client.read_timeout_s
        if self.client.answer_timeout_s:
            due = min(due, self.sent_at + self.client.answer_timeout_s)
        return due

    def _check_silence(self) -> None:
        # One timer per exchange, pushed back only when it fires: cheaper than re-arming on every chunk.
        now = self.loop.time()
        limit = self.client.answer_timeout_s
        if limit and now - self.sent_at >= limit:
            self.watchdog = None
            self._fail(UpstreamTimeout(f"the upstream's answer did not end within {limit:g} s"))
            self.abort()
            return
        if now - self.last_data_at < self.client.read_timeout_s:
            self.watchdog = self.loop.call_at(self._next_check(), self._check_silence)
            return
        self.watchdog = None
        self._fail(UpstreamTimeout(f"no data from the upstream for {self.client.read_timeout_s:g} s"))
        self.abort()

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None and not self.complete:
            self.error = error
            if self.head is not None and not self.head.done():
                self.head.set_exception(error)
            self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # --- asyncio protocol ---

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        self.last_data_at = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"invalid HTTP from the upstream: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head is not None and self.status and not self.complete and self._ends_at_close():
            self.on_message_complete()
        elif self.head is not None:
            self._fail(UpstreamBroken("the upstream closed the connection" + (f": {exc}" if exc else "")))
        self._stop_watchdog()
        self.client.forget(self)

    def _ends_at_close(self) -> bool:
        names = {name for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    # --- httptools callbacks ---

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if self.head is not None and not self.head.done():
            self.head.set_result(Response(self, self.status, self.headers))

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_limit and self.body_bytes > self.body_limit:
            self._too_large()  # the rest of what this read brought is dropped, not buffered
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_ABOVE_BYTES and not self.paused and not self.reading_whole:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._stop_watchdog()
        self._wake()


class ProxiedConnection(Connection):
    """A connection to an HTTP proxy carrying absolute-form requests: its 407 is the proxy's refusal, not an answer."""

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() == 407:
            proxy = self.origin.proxy
            hint = " (user:password in the proxy URL)" if not proxy.authorization else ""
            self._fail(UpstreamConnectError(f"proxy {proxy.url} wants credentials for {self.origin.authority}{hint}"))
            self.abort()
            return
        super().on_headers_complete()
