"""A lean HTTP/1.1 client for the upstream model servers, on asyncio protocols and httptools.

Why not aiohttp here: it spends 90-160 µs of CPU on each request (bench/http_client_bench.py), which made it
the largest part of a proxied request; at 64 concurrent clients a bare proxy built on it reached 0.2x of the
direct throughput, the same proxy on this client 0.5x. It does only what the gateway needs from an upstream:
one POST at a time per keep-alive connection, responses with a length, chunked or ending at close, streamed
or read whole, TLS for https upstreams, a connect timeout and a limit on silence between bytes. Bodies pass
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
import base64
import ipaddress
import socket
import ssl
import time
import urllib.request
from urllib.parse import unquote, urlsplit

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


class Proxy:
    """An HTTP proxy (``http://[user:password@]host[:port]``): where to connect and how to authenticate."""

    __slots__ = ("authorization", "host", "key", "port", "url")

    def __init__(self, url: str) -> None:
        if "://" not in url:
            url = "http://" + url  # HTTP_PROXY=proxy:3128, as curl and requests read it
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            where = parts.netloc.rpartition("@")[2]
            raise ValueError(f"unsupported proxy {parts.scheme}://{where}: only http:// proxies are supported")
        self.host, self.port = parts.hostname, parts.port or 80
        self.url = f"http://{_authority(self.host, self.port)}"  # without credentials: for messages
        self.authorization = b""
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.authorization = b"Basic " + base64.b64encode(secret)
        self.key = (self.host, self.port, self.authorization)


class Origin:
    """Where requests for one base URL go, with the request line prefix and Host header encoded once.

    Through a proxy: an http upstream's requests go to the proxy in absolute form (the prefix carries the
    scheme and authority, the host lines the Proxy-Authorization); an https upstream is reached through a
    CONNECT tunnel (``tunnel``) and its requests look as they would without the proxy.
    """

    __slots__ = (
        "address",
        "authority",
        "host",
        "host_lines",
        "path_prefix",
        "pool_key",
        "port",
        "proxy",
        "tls",
        "tunnel",
    )

    def __init__(self, base_url: str, proxy: Proxy | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.authority = _authority(self.host, self.port)
        self.path_prefix = parts.path.rstrip("/").encode()
        host_header = parts.netloc.rpartition("@")[2].encode()
        self.host_lines = host_header  # the Host header's value, and any header lines every request here carries
        self.proxy, self.tunnel = proxy, proxy is not None and self.tls
        self.address = (self.host, self.port) if proxy is None else (proxy.host, proxy.port)  # where TCP goes
        if proxy is not None and not self.tls:
            self.path_prefix = b"http://" + host_header + self.path_prefix
            if proxy.authorization:
                self.host_lines += b"\r\nproxy-authorization: " + proxy.authorization
        # Base URLs on one server (through one proxy) share its connections.
        self.pool_key = (self.host, self.port, self.tls, proxy.key if proxy else None)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bypasses_proxy(no_proxy: str, host: str, port: int) -> bool:
    """Whether NO_PROXY exempts ``host``: the standard library's rules (``*``; a name covers itself and its
    subdomains, a leading dot or ``*.`` ignored; ``name:port`` only that port) plus IP addresses and CIDR
    networks, as curl and requests read them."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return True
        name, entry_port = entry, ""
        if entry.startswith("["):  # [v6]:port
            name, _, rest = entry[1:].partition("]")
            entry_port = rest.removeprefix(":")
        elif entry.count(":") == 1:
            name, _, entry_port = entry.partition(":")
        name = name.removeprefix("*").lstrip(".")
        if not name or (entry_port and entry_port != str(port)):
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
                continue
            except ValueError:
                pass
        if host == name or host.endswith("." + name):
            return True
    return False


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


class _ProxiedConnection(_Connection):
    """A connection to an HTTP proxy carrying absolute-form requests: its 407 is the proxy's refusal, not an answer."""

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() == 407:
            proxy = self.origin.proxy
            hint = " (user:password in the proxy URL)" if not proxy.authorization else ""
            self._fail(UpstreamConnectError(f"proxy {proxy.url} wants credentials for {self.origin.authority}{hint}"))
            self.abort()
            return
        super().on_headers_complete()


class _Tunnel(asyncio.Protocol):
    """A connection to a proxy until it answers CONNECT; TLS to the upstream then takes it over."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future = asyncio.get_running_loop().create_future()  # the proxy's response head
        self.buffer = b""

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.answer.done():
            return
        if b"\r\n\r\n" in self.buffer:
            self.answer.set_result(self.buffer)
        elif len(self.buffer) > 65536:
            self.answer.set_exception(ConnectionError("the proxy's answer to CONNECT has no end"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(ConnectionError("the proxy closed the connection"))

    async def open(self, origin: Origin) -> asyncio.Transport:
        """Asks the proxy for a tunnel to the origin; returns the transport once it is open."""
        proxy = origin.proxy
        request = f"CONNECT {origin.authority} HTTP/1.1\r\nhost: {origin.authority}\r\n".encode()
        if proxy.authorization:
            request += b"proxy-authorization: " + proxy.authorization + b"\r\n"
        self.transport.write(request + b"\r\n")
        head = await self.answer
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        status = status_line.split(" ", 2)[1] if status_line.count(" ") >= 1 else ""
        if not (status.isdigit() and 200 <= int(status) < 300):
            hint = " (the proxy wants credentials: user:password in the proxy URL)" if status == "407" else ""
            raise UpstreamConnectError(
                f"proxy {proxy.url} refused CONNECT to {origin.authority}: {status_line!r}{hint}"
            )
        if not head.endswith(b"\r\n\r\n"):
            raise UpstreamConnectError(f"proxy {proxy.url} sent data before the tunnel to {origin.authority} opened")
        return self.transport


class UpstreamClient:
    """Keep-alive connections per upstream origin; at most ``max_in_flight`` exchanges at once (more wait).

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
        idle_timeout_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: dict[str, str] | None = None,
    ) -> None:
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        # Requests go out in bursts (proxy/outbox.py).
        self.outbox = Outbox()
        self.idle_timeout_s = idle_timeout_s
        self.slots = asyncio.Semaphore(max_in_flight)
        self._idle: dict[tuple, list[_Connection]] = {}
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
        via = f" through proxy {origin.proxy.url}" if origin.proxy else ""
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if origin.tunnel:
                    return await self._connect_tunnel(origin)
                protocol = _Connection if origin.proxy is None else _ProxiedConnection
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

    async def _connect_tunnel(self, origin: Origin) -> _Connection:
        """CONNECT through the proxy, then TLS to the upstream (checked against the upstream's name) inside."""
        loop = asyncio.get_running_loop()
        transport, tunnel = await loop.create_connection(_Tunnel, *origin.address)
        try:
            await tunnel.open(origin)
            conn = _Connection(self, origin)
            tls = await loop.start_tls(transport, conn, self.ssl_context(), server_hostname=origin.host)
        except BaseException:
            transport.abort()
            raise
        conn.connection_made(tls)
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
