"""A lean HTTP/1.1 load generator for the gateway benchmark.

Plain asyncio streams on uvloop with keep-alive connections and pre-encoded requests: the client spends
as little CPU per request as possible, so on a 2-core machine the figures measure the server, not the
client. It understands exactly what the fake upstream and the gateway send: content-length bodies and
chunked SSE streams.
"""

import asyncio
import itertools
import socket
import time
from dataclasses import dataclass, field


def percentile_ms(values: list[float], q: float) -> float:
    """The ``q``-th percentile of latencies in seconds, in milliseconds."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000, 3) if ordered else float("nan")


def encode_post(host: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"host: {host}", "content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def _head(self) -> tuple[int, int | None]:
        """The status and the content length (None: chunked). The head is searched, not split into headers:
        the client's cost must not grow with the number of headers a server sends, or on a shared machine
        a server that sends more (the gateway's x-ratelimit-*) would look slower by the client's work."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])  # "HTTP/1.1 200 ..."
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            return status, None
        return status, int(head[at + 17 : head.index(b"\r\n", at + 17)])

    async def request(self, raw: bytes) -> int:
        """Sends a request and reads the whole response; returns its status."""
        self.writer.write(raw)
        status, length = await self._head()
        if length is not None:
            await self.reader.readexactly(length)
        else:
            async for _ in self._chunks():
                pass
        return status

    async def stream(self, raw: bytes, started: float) -> tuple[int, list[float]]:
        """Sends a streaming request; returns its status and the arrival time of every SSE data event."""
        self.writer.write(raw)
        status, _ = await self._head()
        arrivals, pending = [], b""
        async for data in self._chunks():
            pending += data
            while b"\n\n" in pending:  # an SSE event may span or share HTTP chunks
                event, pending = pending.split(b"\n\n", 1)
                if event.startswith(b"data: ") and event != b"data: [DONE]":
                    arrivals.append(time.perf_counter() - started)
        return status, arrivals

    async def _chunks(self):
        while True:
            size = int((await self.reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                return
            yield data[:-2]


@dataclass
class Run:
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0.0


async def closed_loop(host: str, port: int, raw: bytes, *, concurrency: int, requests: int) -> Run:
    """``concurrency`` clients, each sending its next request as soon as the last one is answered."""
    connections = [await Connection.open(host, port) for _ in range(concurrency)]
    run, remaining = Run(), [requests]

    async def client(conn: Connection) -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            t0 = time.perf_counter()
            status = await conn.request(raw)
            if status == 200:
                run.latencies_s.append(time.perf_counter() - t0)
            else:
                run.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    run.elapsed_s = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return run


@dataclass
class StreamRun:
    ttft_s: list[float] = field(default_factory=list)
    gaps_s: list[float] = field(default_factory=list)  # between consecutive content events of a stream
    errors: int = 0


async def concurrent_streams(host: str, port: int, raw: bytes, *, streams: int) -> StreamRun:
    """``streams`` streaming requests at once: time to first event and the gaps between events."""
    connections = [await Connection.open(host, port) for _ in range(streams)]
    run = StreamRun()

    async def one(conn: Connection) -> None:
        status, arrivals = await conn.stream(raw, time.perf_counter())
        if status != 200 or not arrivals:
            run.errors += 1
            return
        run.ttft_s.append(arrivals[0])
        run.gaps_s += [b - a for a, b in itertools.pairwise(arrivals)]

    await asyncio.gather(*(one(c) for c in connections))
    for conn in connections:
        conn.close()
    return run
