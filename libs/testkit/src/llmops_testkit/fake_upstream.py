"""A small OpenAI-compatible server on loopback for tests where inference is not the subject.

Plain asyncio HTTP/1.1 with keep-alive; every response (and every SSE event) goes out in one write
with TCP_NODELAY, so it adds no delayed-ACK stalls to what a benchmark measures. It runs on its own
event loop in a thread, so synchronous tests, subprocess gateways and benchmarks can all reach it.
"""

import asyncio
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

# Model servers answer with a request id of their own (vLLM, our inference service): so does the fake.
_OWN_ID = b"x-request-id: fake-upstream-id\r\n"


@dataclass
class Behaviour:
    """What the fake does; tests change it between requests."""

    status: int = 200  # answer this status instead of a completion
    # Its error message quotes the Authorization header it got, as servers that refuse a key do (OpenAI a part of it).
    quote_authorization: bool = False
    delay_s: float = 0.0  # before the status line
    chunks: int = 5  # content chunks in a streamed answer
    chunk_delay_s: float = 0.0
    prompt_tokens: int = 11
    cached_tokens: int = 0  # of the prompt tokens, reported as cached (OpenAI's prompt_tokens_details)
    close_mid_stream: bool = False  # drop the connection after half the chunks
    also_lists: tuple[str, ...] = ()  # more models /models lists besides the fake's name (e.g. an adapter loaded)
    # As the inference service answers for a registry adapter: this version in x-llmops-model-version (a completion).
    model_version: str | None = None
    # A bad upstream: a 200 answer with this body verbatim (and content type) instead of a completion, or a stream
    # whose events (each a whole ``data: ...\n\n``) are these, verbatim, before the usage chunk and [DONE].
    raw_body: bytes | None = None
    raw_content_type: str = "application/json"
    raw_events: list[bytes] | None = None
    # A hostile upstream: this many bytes of filler (``x``), in 64 KiB pieces, each written once the last one was
    # taken: a 200 whole answer with no length that goes on and on, or, in a stream (after ``raw_events``), one event
    # (``data: xxx...``) that never ends. ``Stats.flood_sent`` says how much the peer took before it closed.
    flood_bytes: int = 0
    # A scripted model: a whole (not streamed) answer's text made from the request (e.g. a judge's verdict on the
    # answers in its prompt), instead of the echo of the fake's name.
    reply: Callable[[dict], str] | None = None
    # A closed upstream (the inference service with a serving token): every request without this bearer is a 401.
    api_key: str | None = None


@dataclass
class Stats:
    # False in a process of its own (``main``): nobody can read its stats there, and a soak must not see them grow.
    keep_requests: bool = True
    requests: list[dict] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # each completion request's headers (lower-case)
    streams_started: int = 0
    streams_finished: int = 0
    streams_cancelled: int = 0  # the client went away before the end
    abandoned_before_answer: int = 0  # the client went away during ``delay_s``
    flood_sent: list[int] = field(default_factory=list)  # per flood: the bytes written before it ended
    refused: int = 0  # requests without ``Behaviour.api_key``


def _max_tokens(payload: dict) -> int | None:
    """``max_tokens`` as a model server reads it: 1.0 is 1 (pydantic's lax integers, as vLLM's), junk is none."""
    value = payload.get("max_tokens")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return max(1, int(value))


class FakeUpstream:
    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.behaviour = Behaviour()
        self.stats = Stats()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeUpstream":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"fake-upstream-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await asyncio.sleep(0.05)  # let the connection handlers see it and end

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    def reset(self) -> None:
        self.behaviour, self.stats = Behaviour(), Stats()

    # --- HTTP ---

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not await self._respond(method, path, body, reader, writer, headers):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _respond(
        self,
        method: str,
        path: str,
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[str, str] | None = None,
    ) -> bool:
        """Returns False when the connection must close."""
        # Bound once: a request still running when the next test resets the fake counts into its own test's stats.
        behaviour, stats = self.behaviour, self.stats
        if behaviour.api_key is not None and (headers or {}).get("authorization") != f"Bearer {behaviour.api_key}":
            stats.refused += 1
            error = {"error": {"message": "serving token required", "type": "authentication_error", "code": None}}
            self._write_json(writer, 401, error)
            return True
        if path.endswith("/models"):
            names = (self.name, *behaviour.also_lists)
            self._write_json(writer, 200, {"object": "list", "data": [{"id": n, "object": "model"} for n in names]})
            return True
        payload = orjson.loads(body) if body else {}
        if stats.keep_requests:
            stats.requests.append(payload)
            stats.headers.append(headers or {})
        if behaviour.delay_s and await self._client_left_during(reader, behaviour.delay_s):
            stats.abandoned_before_answer += 1
            return False
        if behaviour.status != 200:
            message = f"{self.name} fails on purpose"
            if behaviour.quote_authorization:
                message += f"; refused: {(headers or {}).get('authorization')}"
            error = {"error": {"message": message, "type": "server_error", "code": None}}
            self._write_json(writer, behaviour.status, error)
            return True
        chat = path.endswith("/chat/completions")
        if behaviour.flood_bytes and not payload.get("stream"):
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n"
            writer.write(head + _OWN_ID + b"\r\n")
            await self._flood(writer, behaviour.flood_bytes, stats)
            writer.write(b"0\r\n\r\n")
            return True
        if behaviour.raw_body is not None and not payload.get("stream"):
            head = f"HTTP/1.1 200 OK\r\ncontent-type: {behaviour.raw_content_type}\r\n"
            head += f"content-length: {len(behaviour.raw_body)}\r\n"
            writer.write(head.encode() + _OWN_ID + b"\r\n" + behaviour.raw_body)
            return True
        if payload.get("stream"):
            return await self._stream(reader, writer, payload, chat, behaviour, stats)
        completion_tokens = min(behaviour.chunks, _max_tokens(payload) or behaviour.chunks)
        text = behaviour.reply(payload) if behaviour.reply else self._answer(payload, completion_tokens)
        choice = {"index": 0, "finish_reason": "stop"}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        self._write_json(
            writer,
            200,
            {
                "id": "cmpl-fake",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": payload.get("model"),
                "choices": [choice],
                "usage": self._usage(behaviour, completion_tokens),
            },
            extra=f"x-llmops-model-version: {behaviour.model_version}\r\n".encode() if behaviour.model_version else b"",
        )
        return True

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        payload: dict,
        chat: bool,
        behaviour: Behaviour,
        stats: Stats,
    ) -> bool:
        stats.streams_started += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n" + _OWN_ID + b"\r\n"
        )
        count = min(behaviour.chunks, _max_tokens(payload) or behaviour.chunks)
        try:
            for raw in behaviour.raw_events or ():
                writer.write(self._chunk(raw))
                await writer.drain()
            if behaviour.flood_bytes:
                writer.write(self._chunk(b"data: "))
                await self._flood(writer, behaviour.flood_bytes, stats)
                writer.write(self._chunk(b"\n\n"))
            for i in range(count):
                if behaviour.close_mid_stream and i == count // 2:
                    writer.transport.abort()
                    return False
                piece = f"{self.name}:{payload.get('model')}:{i} " if i == 0 else f"tok{i} "
                delta = {"content": piece}
                choice = {"index": 0, "delta": delta} if chat else {"index": 0, "text": piece}
                if i == count - 1:  # as vLLM and OpenAI do: the last content chunk says why the answer ended
                    choice["finish_reason"] = "stop"
                self._write_event(writer, {"id": "cmpl-fake", "model": payload.get("model"), "choices": [choice]})
                await writer.drain()
                if behaviour.chunk_delay_s and await self._client_left_during(reader, behaviour.chunk_delay_s):
                    raise ConnectionResetError("client closed the stream")
            if (payload.get("stream_options") or {}).get("include_usage"):
                self._write_event(writer, {"id": "cmpl-fake", "choices": [], "usage": self._usage(behaviour, count)})
            writer.write(self._chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
            stats.streams_finished += 1
            return True
        except (ConnectionError, asyncio.CancelledError):
            stats.streams_cancelled += 1
            raise

    async def _flood(self, writer: asyncio.StreamWriter, total: int, stats: Stats) -> None:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        piece, sent = self._chunk(b"x" * 65536), 0
        try:
            while sent < total:
                writer.write(piece)
                await writer.drain()  # taken by the socket (at most 64 KiB wait in asyncio's buffer)
                sent += 65536
        finally:
            stats.flood_sent.append(sent)

    @staticmethod
    async def _client_left_during(reader: asyncio.StreamReader, seconds: float) -> bool:
        """Waits, noticing at once if the client closes the connection (as a real server does)."""
        try:
            return await asyncio.wait_for(reader.read(1), seconds) == b""
        except TimeoutError:
            return False

    def _answer(self, payload: dict, tokens: int) -> str:
        return f"{self.name}:{payload.get('model')}:0 " + " ".join(f"tok{i}" for i in range(1, tokens))

    @staticmethod
    def _usage(behaviour: Behaviour, completion_tokens: int) -> dict:
        usage = {
            "prompt_tokens": behaviour.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": behaviour.prompt_tokens + completion_tokens,
        }
        if behaviour.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": behaviour.cached_tokens}
        return usage

    @staticmethod
    def _chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    def _write_event(self, writer: asyncio.StreamWriter, event: dict) -> None:
        writer.write(self._chunk(b"data: " + orjson.dumps(event) + b"\n\n"))

    @staticmethod
    def _write_json(writer: asyncio.StreamWriter, status: int, document: dict, extra: bytes = b"") -> None:
        body = orjson.dumps(document)
        head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        writer.write(head.encode() + _OWN_ID + extra + b"\r\n" + body)


def main() -> None:
    """``python -m llmops_testkit.fake_upstream --port N``: a fake in a process of its own (benchmarks)."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="fake")
    parser.add_argument("--chunks", type=int, default=5, help="content chunks (tokens) per answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks")
    args = parser.parse_args()
    upstream = FakeUpstream(args.name)
    upstream.stats = Stats(keep_requests=False)
    upstream.port = args.port
    upstream.behaviour.chunks, upstream.behaviour.chunk_delay_s = args.chunks, args.chunk_delay
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before the server thread starts: it inherits the mask
    upstream.start()
    print(f"fake upstream listening on {upstream.base_url}", flush=True)
    signal.sigwait(stop_signals)
    upstream.stop()


if __name__ == "__main__":
    main()
