"""The completion endpoints served straight from uvicorn's HTTP protocol, without ASGI in between.

Under load, uvicorn's ASGI cycle (scope, events, the receive/send message dicts, Starlette's request and
response objects, a watcher task per request for disconnects) cost more CPU than everything else uvicorn
does. This protocol is uvicorn's own httptools protocol with one change: a POST to a completion path is read
into a buffer and handed to ``proxy.service`` with an ``Exchange`` over this connection; the answer is written
to the transport, whole in one write or streamed in chunked encoding. A client that leaves cancels the work
at once (``connection_lost``, no polling). Every other request, and anything unusual (pipelining, a
concurrency limit), takes uvicorn's normal path to the app.

It reuses uvicorn's per-connection state and keep-alive, flow control and shutdown handling; the attributes
it relies on are those of ``RequestResponseCycle`` that ``HttpToolsProtocol`` reads (uvicorn is pinned).
"""

import asyncio
import logging

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from llmops_common.errors import APIError, error_body
from llmops_common.logging import request_id_var
from llmops_common.middleware import REQUEST_ID_HEADER, accepted_request_id
from llmops_common.streaming import ClientDisconnected
from llmops_gateway.proxy import service
from llmops_gateway.proxy.exchange import Reply
from llmops_gateway.proxy.front import CompletionsFront
from llmops_gateway.proxy.outbox import Outbox

logger = logging.getLogger(__name__)

NATIVE_PATHS = {b"/v1/chat/completions": "chat", b"/v1/completions": "text"}
_REQUEST_ID = REQUEST_ID_HEADER.decode()
_INTERNAL_ERROR = orjson.dumps(error_body("internal error", type="server_error", code="internal_error"))


def _find_front(app) -> CompletionsFront | None:
    """The gateway's front inside whatever middleware uvicorn wrapped around it."""
    for _ in range(8):
        if isinstance(app, CompletionsFront):
            return app
        app = getattr(app, "app", None)
    return None


_default_head: tuple[object, bytes] = (None, b"")


def _default_headers(server_state) -> bytes:
    """uvicorn's server and date headers, encoded once per new list (uvicorn makes one a second, for the date)."""
    global _default_head
    headers = server_state.default_headers
    if _default_head[0] is not headers:
        _default_head = (headers, b"".join(name + b": " + value + b"\r\n" for name, value in headers))
    return _default_head[1]


class _Disconnect:
    """Stands in for the cycle's ``message_event``: uvicorn sets it when the connection is lost."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: "NativeExchange") -> None:
        self.exchange = exchange

    def set(self) -> None:
        watcher = self.exchange.watcher
        if self.exchange.disconnected and watcher is not None:
            watcher.cancel()


class NativeExchange:
    """One completion request on a connection; also what uvicorn's protocol sees as the current cycle."""

    def __init__(self, protocol: "GatewayHttpProtocol", kind: str, keep_alive: bool) -> None:
        self.protocol, self.kind, self.keep_alive = protocol, kind, keep_alive
        self.headers = protocol.headers
        self.request_id = ""
        self.buffer = bytearray()
        self.too_large = False
        self.started = False  # the task serving it exists
        self.head_sent = False
        self.in_outbox = False  # its whole response waits in the outbox
        # Read by HttpToolsProtocol: connection_lost sets ``disconnected`` and ``message_event``; shutdown
        # clears ``keep_alive``; a pipelined request waits while ``response_complete`` is false.
        self.disconnected = False
        self.response_complete = False
        self.message_event = _Disconnect(self)
        self.watcher: asyncio.Task | None = None  # cancelled if the client leaves

    # --- proxy.exchange.Exchange ---

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    async def body(self, max_bytes: int) -> bytes:
        if self.too_large:  # set by the protocol as the body arrived, against the same setting
            raise APIError(413, f"request body over {max_bytes} bytes", code="request_too_large")
        return bytes(self.buffer)

    def cancelled_on_disconnect(self) -> "_CancelledOnDisconnect":
        return _CancelledOnDisconnect(self)

    # --- serving it ---

    async def run(self, gw) -> None:
        given = next((value for name, value in self.headers if name == REQUEST_ID_HEADER), None)
        self.request_id = accepted_request_id(given)
        request_id_var.set(self.request_id)  # this task's own context: it ends with the task
        try:
            reply = await service.complete(gw, self, kind=self.kind)
            if reply.stream is not None:
                await self._stream(reply)
            elif not self.disconnected:
                self._write_head(reply.status, reply.headers, len(reply.body), reply.body, whole=True)
        except APIError as exc:
            body = orjson.dumps(error_body(exc.message, type=exc.type, code=exc.code))
            self._write_error(exc.status, {"content-type": "application/json", **(exc.headers or {})}, body)
        except ClientDisconnected:
            pass
        except Exception:
            logger.exception("unhandled error")
            self._write_error(500, {"content-type": "application/json"}, _INTERNAL_ERROR)
        finally:
            if not self.in_outbox:  # else the outbox completes it once written
                self._complete()

    def _write_error(self, status: int, headers: dict[str, str], body: bytes) -> None:
        if self.head_sent:  # too late for a status: cutting the connection is the only signal left
            self.keep_alive = False
        else:
            self._write_head(status, headers, len(body), body, whole=True)

    async def _stream(self, reply: Reply) -> None:
        transport, flow = self.protocol.transport, self.protocol.flow
        self.watcher = asyncio.current_task()
        try:
            self._write_head(reply.status, reply.headers, None, b"")
            async for data in reply.stream:
                transport.write(b"%x\r\n%b\r\n" % (len(data), data))
                if flow.write_paused:
                    await flow.drain()
            transport.write(b"0\r\n\r\n")
        except asyncio.CancelledError:
            if not self.disconnected:
                raise
            asyncio.current_task().uncancel()
        finally:
            self.watcher = None
            await reply.stream.aclose()  # closes the upstream response if the stream did not end

    def _write_head(
        self, status: int, headers: dict[str, str], length: int | None, body: bytes, *, whole: bool = False
    ) -> None:
        """``whole``: the entire response, sent with this iteration's other writes (``proxy.outbox``); the exchange
        is complete once it is written (a shutdown meanwhile sees it unfinished and lets it go out)."""
        if self.disconnected:
            return
        self.head_sent = True
        text = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        text += f"{_REQUEST_ID}: {self.request_id}\r\n"
        text += "transfer-encoding: chunked\r\n" if length is None else f"content-length: {length}\r\n"
        if not self.keep_alive:
            text += "connection: close\r\n"
        head = STATUS_LINE[status] + _default_headers(self.protocol.server_state) + text.encode("latin-1")
        if whole:
            self.in_outbox = True
            self.protocol.outbox.send(self.protocol.transport, b"".join((head, b"\r\n", body)), self._complete)
        else:
            self.protocol.transport.write(head + b"\r\n")

    def _complete(self) -> None:
        self.response_complete = True
        protocol = self.protocol
        if not self.keep_alive and not protocol.transport.is_closing():
            protocol.transport.close()
        protocol.on_response_complete()


class _CancelledOnDisconnect:
    __slots__ = ("exchange",)

    def __init__(self, exchange: NativeExchange) -> None:
        self.exchange = exchange

    async def __aenter__(self) -> None:
        self.exchange.watcher = asyncio.current_task()
        if self.exchange.disconnected:
            raise ClientDisconnected()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        self.exchange.watcher = None
        if exc_type is asyncio.CancelledError and self.exchange.disconnected:
            asyncio.current_task().uncancel()
            raise ClientDisconnected() from None
        return False


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the completion endpoints served natively."""

    front: CompletionsFront | None = None
    outbox: Outbox | None = None

    def on_headers_complete(self) -> None:
        kind = NATIVE_PATHS.get(self.url.partition(b"?")[0])
        if (
            kind is None
            or self.parser.get_method() != b"POST"
            or (self.cycle is not None and not self.cycle.response_complete)  # pipelined: the normal path queues it
            or self.limit_concurrency is not None
            or self.parser.should_upgrade()
            or self._front() is None
        ):
            super().on_headers_complete()
            return
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        self.cycle = NativeExchange(self, kind, keep_alive)
        if self.expect_100_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        exchange = self.cycle
        if not isinstance(exchange, NativeExchange):
            super().on_body(body)
        elif not exchange.too_large:
            exchange.buffer += body
            if len(exchange.buffer) > self.front.app.state.gateway.settings.max_body_bytes:
                # Answer 413 now and close after it: the rest of the body is not worth reading.
                exchange.too_large, exchange.buffer, exchange.keep_alive = True, bytearray(), False
                self._start(exchange)

    def on_message_complete(self) -> None:
        exchange = self.cycle
        if not isinstance(exchange, NativeExchange):
            super().on_message_complete()
        elif not exchange.started:
            self._start(exchange)

    def _start(self, exchange: NativeExchange) -> None:
        exchange.started = True
        gw = self.front.app.state.gateway
        if self.outbox is None:  # once per process: one burst per iteration for upstream requests and answers
            type(self).outbox = gw.upstream.outbox
        task = self.loop.create_task(exchange.run(gw))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _front(self) -> CompletionsFront | None:
        if self.front is None:
            type(self).front = _find_front(self.app)
        return self.front
