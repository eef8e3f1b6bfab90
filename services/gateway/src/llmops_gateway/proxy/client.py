"""A lean HTTP/1.1 client for the upstream model servers, on asyncio protocols and httptools.

Why not aiohttp here: it spends 90-160 µs of CPU on each request (bench/http_client_bench.py), which made it
the largest part of a proxied request; at 64 concurrent clients a bare proxy built on it reached 0.2x of the
direct throughput, the same proxy on this client 0.5x. It does only what the gateway needs from an upstream:
one POST at a time per keep-alive connection, responses with a length, chunked or ending at close, streamed
or read whole (each within a byte limit), TLS for https upstreams, a connect timeout and a limit on silence
between bytes. Bodies pass
through as sent (no Accept-Encoding is sent, nothing is decompressed). The retriever and feedback calls,
off the hot path, keep aiohttp.

TLS verifies certificates against ``ssl.create_default_context()`` (the system store, or SSL_CERT_FILE /
SSL_CERT_DIR) unless given a context. HTTP_PROXY / HTTPS_PROXY / NO_PROXY (either case) are read once, as the
standard library reads them: an http upstream through a proxy gets absolute-form requests (with
Proxy-Authorization when the proxy URL has user:password), an https upstream a CONNECT tunnel with TLS to the
upstream inside it. Whether and how an origin goes through a proxy is decided once per base URL (``Origin``);
a request costs the same with or without one.
"""

import asyncio
import ssl
import time
import urllib.request
from urllib.parse import urlsplit

from llmops_gateway.proxy.connection import (
    Connection,
    ProxiedConnection,
    Response,
    UpstreamBroken,
    UpstreamConnectError,
    UpstreamTimeout,
)
from llmops_gateway.proxy.origins import Origin, Proxy, bypasses_proxy
from llmops_gateway.proxy.outbox import Outbox
from llmops_gateway.proxy.tunnel import Tunnel

_IDLE_SWEEP_S = 10.0


class UpstreamClient:
    """Keep-alive connections per upstream origin; at most ``max_in_flight`` exchanges at once (more wait).

    An answer read whole is cut (``UpstreamTooLarge``, its connection closed) past ``max_answer_bytes``, one read
    as it streams past ``max_stream_bytes`` (0: no limit); a reader may ask for another limit.

    ``ssl_context`` verifies https upstreams (default: ``ssl.create_default_context()``); ``proxies`` maps
    ``http`` / ``https`` to a proxy URL and ``no`` to a NO_PROXY list, as ``urllib.request.getproxies()`` does
    (default: read from the environment, once, here).
    """

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_in_flight: int,
        answer_timeout_s: float = 0.0,
        idle_timeout_s: float = 30.0,
        max_answer_bytes: int = 0,
        max_stream_bytes: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: dict[str, str] | None = None,
    ) -> None:
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.answer_timeout_s = answer_timeout_s  # 0: an answer may take as long as its bytes keep coming
        self.max_answer_bytes, self.max_stream_bytes = max_answer_bytes, max_stream_bytes
        # Requests go out in bursts (proxy/outbox.py).
        self.outbox = Outbox()
        self.idle_timeout_s = idle_timeout_s
        self.slots = asyncio.Semaphore(max_in_flight)
        self._idle: dict[tuple, list[Connection]] = {}
        self._origins: dict[str, Origin] = {}
        self._ssl = ssl_context
        proxies = urllib.request.getproxies() if proxies is None else proxies
        self._proxies = {scheme: Proxy(url) for scheme in ("http", "https") if (url := proxies.get(scheme))}
        self._no_proxy = proxies.get("no", "")
        self._sweeper: asyncio.TimerHandle | None = None

    def origin(self, base_url: str) -> Origin:
        origin = self._origins.get(base_url)
        if origin is None:
            origin = self._origins[base_url] = Origin(base_url, self._proxy_for(base_url))
        return origin

    def _proxy_for(self, base_url: str) -> Proxy | None:
        parts = urlsplit(base_url)
        proxy = self._proxies.get(parts.scheme)
        if proxy is None or not parts.hostname:
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return None if bypasses_proxy(self._no_proxy, parts.hostname, port) else proxy

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # the system's CAs, or SSL_CERT_FILE / SSL_CERT_DIR
        return self._ssl

    async def post(self, base_url: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> Response:
        """Sends a POST to ``base_url + path``; returns when the answer's headers are in."""
        origin = self.origin(base_url)
        head = [b"POST ", origin.path_prefix, path.encode(), b" HTTP/1.1\r\nhost: ", origin.host_lines]
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
    async def _exchange(conn: Connection, raw: bytes) -> Response:
        """Sends one request; the connection holds an in-flight slot until the exchange ends, however it ends."""
        conn.holds_slot = True
        try:
            return await conn.send(raw)
        except BaseException:  # failed, timed out, or the caller was cancelled (its client left)
            conn.abort()
            raise

    def _take_idle(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin.pool_key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self, origin: Origin) -> Connection:
        via = f" through proxy {origin.proxy.url}" if origin.proxy else ""
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if origin.tunnel:
                    return await self._connect_tunnel(origin)
                protocol = Connection if origin.proxy is None else ProxiedConnection
                _, conn = await asyncio.get_running_loop().create_connection(
                    lambda: protocol(self, origin),
                    *origin.address,
                    ssl=self.ssl_context() if origin.tls else None,
                )
                return conn
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {origin.authority}{via} timed out") from None
        except OSError as exc:  # refused, unreachable, TLS handshake or certificate verification failed
            raise UpstreamConnectError(f"cannot connect to {origin.authority}{via}: {exc}") from None

    async def _connect_tunnel(self, origin: Origin) -> Connection:
        """CONNECT through the proxy, then TLS to the upstream (checked against the upstream's name) inside."""
        loop = asyncio.get_running_loop()
        transport, tunnel = await loop.create_connection(Tunnel, *origin.address)
        try:
            await tunnel.open(origin)
            conn = Connection(self, origin)
            tls = await loop.start_tls(transport, conn, self.ssl_context(), server_hostname=origin.host)
        except BaseException:
            transport.abort()
            raise
        conn.connection_made(tls)
        return conn

    def put_back(self, conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin.pool_key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(_IDLE_SWEEP_S, self._sweep)

    def forget(self, conn: Connection) -> None:
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
