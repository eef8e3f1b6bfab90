"""A lean HTTP/1.1 client for the upstream model servers, on asyncio protocols and httptools.

Why not aiohttp here: it spends 90-160 µs of CPU on each request (bench/http_client_bench.py), which made it
the largest part of a proxied request; at 64 concurrent clients a bare proxy built on it reached 0.2x of the
direct throughput, the same proxy on this client 0.5x. It does only what the gateway needs from an upstream:
one POST at a time per keep-alive connection, responses with a length, chunked or ending at close, streamed
or read whole, TLS for https upstreams, a connect timeout and a limit on silence between bytes. Bodies pass
through as sent (no Accept-Encoding is sent, nothing is decompressed). The retriever and feedback calls,
off the hot path, keep aiohttp.
"""

import asyncio
import socket
import ssl
import time
from urllib.parse import urlsplit

import httptools

from llmops_gateway.proxy.outbox import Outbox

_IDLE_SWEEP_S = 10.0
_PAUSE_ABOVE_BYTES = 256 * 1024  # a consumer this far behind stops the reading of its connection


class UpstreamError(Exception):
    """Base of every failure to get an answer from an upstream."""


class UpstreamConnectError(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamBroken(UpstreamError):
    """The connection dropped, or the upstream sent something that is not HTTP, before the answer ended."""


class Origin:
    """Where requests for one base URL go, with the request line prefix and Host header encoded once."""

    __slots__ = ("host", "host_header", "path_prefix", "pool_key", "port", "tls")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.path_prefix = parts.path.rstrip("/").encode()
        self.host_header = parts.netloc.rpartition("@")[2].encode()
        self.pool_key = (self.host, self.port, self.tls)  # base URLs on one server share its connections


class Response:
    """One upstream answer. Read it whole (``read``) or as it arrives (``chunks``), then ``release`` or ``close``."""

    __slots__ = ("_conn", "headers", "status")

    def __init__(self, conn: "_Connection", status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._conn, self.status, self.headers = conn, status, headers

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self) -> bytes:
        conn = self._conn
        conn.reading_whole = True  # all of it is wanted: no point pausing the connection for it
        conn.resume()
        while not conn.complete:
            await conn.wait_for_data()
        body = b"".join(conn.chunks)
        conn.chunks.clear()
        return body

    async def chunks(self):
        """Yields body bytes as they arrive."""
        conn = self._conn
        while True:
            if conn.chunks:
                data = b"".join(conn.chunks)
                conn.chunks.clear()
                conn.buffered = 0
                conn.resume()
                yield data
            elif conn.complete:
                return
            else:
                await conn.wait_for_data()

    def release(self) -> None:
        """Done with it: the connection goes back to the pool if the answer was read to its end, else closes."""
        self._conn.finish()

    def close(self) -> None:
        """Drops the connection: the way to tell an upstream to stop generating."""
        self._conn.abort()


class _Connection(asyncio.Protocol):
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
        self.buffered = 0
        self.complete = False
        self.received_any = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future | None = None
        self.last_data_at = 0.0
        self.watchdog: asyncio.TimerHandle | None = None
        self.paused = False
        self.reading_whole = False

    # --- an exchange ---

    def send(self, raw: bytes) -> asyncio.Future:
        self.head = self.loop.create_future()
        self.last_data_at = self.loop.time()
        self.watchdog = self.loop.call_at(self.last_data_at + self.client.read_timeout_s, self._check_silence)
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

    def _check_silence(self) -> None:
        # One timer per exchange, pushed back only when it fires: cheaper than re-arming on every chunk.
        silent_for = self.loop.time() - self.last_data_at
        if silent_for < self.client.read_timeout_s:
            self.watchdog = self.loop.call_later(self.client.read_timeout_s - silent_for, self._check_silence)
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


class UpstreamClient:
    """Keep-alive connections per upstream origin; at most ``max_in_flight`` exchanges at once (more wait)."""

    def __init__(
        self, *, connect_timeout_s: float, read_timeout_s: float, max_in_flight: int, idle_timeout_s: float = 30.0
    ) -> None:
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        # Requests go out in bursts (proxy/outbox.py); the native protocol sends its answers through it too.
        self.outbox = Outbox()
        self.idle_timeout_s = idle_timeout_s
        self.slots = asyncio.Semaphore(max_in_flight)
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._origins: dict[str, Origin] = {}
        self._ssl: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    def origin(self, base_url: str) -> Origin:
        origin = self._origins.get(base_url)
        if origin is None:
            origin = self._origins[base_url] = Origin(base_url)
        return origin

    async def post(self, base_url: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> Response:
        """Sends a POST to ``base_url + path``; returns when the answer's headers are in."""
        origin = self.origin(base_url)
        head = [b"POST ", origin.path_prefix, path.encode(), b" HTTP/1.1\r\nhost: ", origin.host_header]
        for name, value in headers:
            head += (b"\r\n", name, b": ", value)
        head += (b"\r\ncontent-length: ", str(len(body)).encode(), b"\r\n\r\n", body)
        raw = b"".join(head)
        await self.slots.acquire()
        conn = self._take_idle(origin)
        if conn is not None:
            try:
                return await self._exchange(conn, raw)
            except UpstreamBroken:
                if conn.received_any:
                    raise
                # The upstream closed this idle connection as we sent: nothing was answered, so try a new one.
            await self.slots.acquire()
        try:
            conn = await self._connect(origin)
        except BaseException:
            self.slots.release()
            raise
        return await self._exchange(conn, raw)

    @staticmethod
    async def _exchange(conn: _Connection, raw: bytes) -> Response:
        """Sends one request; the connection holds an in-flight slot until the exchange ends, however it ends."""
        conn.holds_slot = True
        try:
            return await conn.send(raw)
        except BaseException:  # failed, timed out, or the caller was cancelled (its client left)
            conn.abort()
            raise

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin.pool_key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        ssl_context = None
        if origin.tls:
            self._ssl = self._ssl or ssl.create_default_context()
            ssl_context = self._ssl
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin), origin.host, origin.port, ssl=ssl_context
                )
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {origin.host}:{origin.port} timed out") from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to {origin.host}:{origin.port}: {exc}") from None
        return conn

    def put_back(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin.pool_key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(_IDLE_SWEEP_S, self._sweep)

    def forget(self, conn: _Connection) -> None:
        """A closed connection leaves the pool (it may be idle there)."""
        idle = self._idle.get(conn.origin.pool_key)
        if idle and conn in idle:
            idle.remove(conn)

    def _sweep(self) -> None:
        """Closes connections idle for longer than ``idle_timeout_s`` (the oldest sit at the bottom)."""
        self._sweeper = None
        cutoff = time.monotonic() - self.idle_timeout_s
        for idle in self._idle.values():
            while idle and idle[0].idle_since < cutoff:
                idle.pop(0).abort()
        if any(self._idle.values()):
            self._sweeper = asyncio.get_running_loop().call_later(_IDLE_SWEEP_S, self._sweep)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
