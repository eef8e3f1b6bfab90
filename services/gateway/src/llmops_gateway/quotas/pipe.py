"""One pipelined Redis connection for the quota scripts, on an asyncio protocol.

The quota check is the only Redis round trip on a request's path. Through redis-py it cost more CPU than the
rest of the gateway's work on a request (~150 µs: asyncio streams, its RESP parser in Python, a deadline per
call); here commands from concurrent requests share one connection and, within a turn of the event loop, one
write; replies are parsed by a few lines of RESP and handed back in order. A command that gets no answer in
``timeout_s`` fails the connection (and every command waiting on it): the next call reconnects. A caller that
is cancelled (its client left) just does not read its reply.
"""

import asyncio
import re
import ssl
from collections import deque

from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url


class ReplyError(Exception):
    """Redis answered with an error (``-ERR ...``, ``-NOSCRIPT ...``)."""


_INTEGERS = re.compile(rb"(?::-?\d+\r\n)+")


class _Incomplete(Exception):
    pass


def bulk(value) -> bytes:
    """One argument as a RESP bulk string."""
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack(*args) -> bytes:
    """A command in RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(arg) for arg in args)


def parse(buf: bytearray, pos: int):
    """One reply at ``pos``: (value, next position), or ``_Incomplete``. Errors are returned as ``ReplyError``."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line, pos = buf[pos], bytes(buf[pos + 1 : end]), end + 2
    if kind == 58:  # ":" integer
        return int(line), pos
    if kind == 36:  # "$" bulk string
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return bytes(buf[pos : pos + size]), pos + size + 2
    if kind == 42:  # "*" array
        size = int(line)
        integers = _INTEGERS.match(buf, pos)  # the quota script's answer: integers only, read in one go
        if integers is not None and integers.group().count(b":") == size:
            return [int(n) for n in integers.group()[1:-2].split(b"\r\n:")], integers.end()
        items = []
        for _ in range(max(size, 0)):
            item, pos = parse(buf, pos)
            items.append(item)
        return (items if size >= 0 else None), pos
    if kind == 43:  # "+" simple string
        return line.decode(), pos
    if kind == 45:  # "-" error
        return ReplyError(line.decode(errors="replace")), pos
    raise ConnectionError(f"not a RESP reply: {bytes(buf[pos - len(line) - 3 : end])!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: "PipelinedRedis") -> None:
        self.pipe = pipe
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: deque[tuple[asyncio.Future, float]] = deque()  # (reply, sent at), in send order
        self.out: list[bytes] = []
        self.closed = False
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def send(self, command: bytes) -> asyncio.Future:
        loop = self.pipe.loop
        reply = loop.create_future()
        if not self.out:  # the first command of this turn: write them all at its end
            loop.call_soon(self._flush)
        self.out.append(command)
        self.waiting.append((reply, loop.time()))
        if self.watchdog is None:
            self.watchdog = loop.call_later(self.pipe.timeout_s, self._check_overdue)
        return reply

    def _flush(self) -> None:
        if not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def _check_overdue(self) -> None:
        self.watchdog = None
        if not self.waiting:
            return
        overdue_at = self.waiting[0][1] + self.pipe.timeout_s
        if self.pipe.loop.time() >= overdue_at:
            self.fail(TimeoutError(f"no reply from Redis in {self.pipe.timeout_s:g} s"))
        else:
            self.watchdog = self.pipe.loop.call_at(overdue_at, self._check_overdue)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        pos = 0
        try:
            while self.waiting:
                value, pos = parse(self.buffer, pos)
                reply, _ = self.waiting.popleft()
                if not reply.done():  # a cancelled caller does not read its reply
                    reply.set_result(value)
        except _Incomplete:
            pass
        except (ConnectionError, ValueError) as exc:
            self.fail(ConnectionError(f"bad reply from Redis: {exc}"))
            return
        del self.buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"Redis connection lost: {exc}" if exc else "Redis closed the connection"))

    def fail(self, error: OSError) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiting:
            reply, _ = self.waiting.popleft()
            if not reply.done():
                reply.set_exception(error)
        self.pipe.forget(self)


class PipelinedRedis:
    def __init__(self, url: str, *, timeout_s: float = 2.0, connect_timeout_s: float = 2.0) -> None:
        self.options = parse_url(url)
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None

    async def call(self, command: bytes):
        """Sends a packed command and returns its reply; ``ReplyError`` for an error reply, ``OSError`` (a
        ``ConnectionError`` or ``TimeoutError``) when Redis cannot be reached or does not answer in time."""
        protocol = self._protocol
        if protocol is None:
            protocol = await self._connect()
        value = await protocol.send(command)
        if isinstance(value, ReplyError):
            raise value
        return value

    async def _connect(self) -> _Protocol:
        if self._connecting is None:  # concurrent first callers share one connection attempt
            self._connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _open(self) -> _Protocol:
        self.loop = loop = asyncio.get_running_loop()
        options = self.options
        kind = options.get("connection_class")
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if kind is UnixDomainSocketConnection:
                    _, protocol = await loop.create_unix_connection(lambda: _Protocol(self), options["path"])
                else:
                    tls = ssl.create_default_context() if kind is SSLConnection else None
                    host, port = options.get("host", "localhost"), options.get("port", 6379)
                    _, protocol = await loop.create_connection(lambda: _Protocol(self), host, port, ssl=tls)
                setup = []
                if options.get("password"):
                    user = options.get("username")
                    setup.append(pack(b"AUTH", *([user] if user else []), options["password"]))
                if options.get("db"):
                    setup.append(pack(b"SELECT", options["db"]))
                for reply in [protocol.send(command) for command in setup]:
                    if isinstance(value := await reply, ReplyError):
                        protocol.fail(ConnectionError(f"Redis refused the connection set-up: {value}"))
                        raise ConnectionError(str(value))
        except TimeoutError:
            raise TimeoutError("connecting to Redis timed out") from None
        self._protocol = protocol
        return protocol

    def forget(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.fail(ConnectionError("closed"))
