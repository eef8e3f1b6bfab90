"""Request-id middleware, written as plain ASGI because it runs on every request."""

import itertools
import os
import secrets

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmops_common.logging import request_id_var

REQUEST_ID_HEADER = b"x-request-id"


# 80 random bits per process, then a counter: as unique as a uuid4 across replicas, at a tenth of the cost.
_PROCESS_PREFIX = secrets.token_hex(10)
_counter = itertools.count()


def _new_process_prefix() -> None:
    global _PROCESS_PREFIX
    _PROCESS_PREFIX = secrets.token_hex(10)


os.register_at_fork(after_in_child=_new_process_prefix)  # a forked worker must not repeat its parent's ids


def new_request_id() -> str:
    """32 hex characters, like ``uuid4().hex``."""
    return f"{_PROCESS_PREFIX}{next(_counter) & 0xFFFFFFFFFFFF:012x}"


def accepted_request_id(value: bytes | None) -> str:
    """The client's ``x-request-id`` if it is sane (1-128 ASCII bytes), else a new one."""
    if value and len(value) <= 128 and value.isascii():
        return value.decode()
    return new_request_id()


class RequestIdMiddleware:
    """Takes ``x-request-id`` from the client (if sane) or makes one, and echoes it on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == REQUEST_ID_HEADER), None)
        request_id = accepted_request_id(given)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        encoded = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, encoded))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


MAX_HEADER_BYTES = 32 * 1024  # like nginx's default (4 buffers of 8 KiB)


class HeaderLimitMiddleware:
    """Refuses a request whose headers add up to more than ``max_bytes`` with 431, in the OpenAI error body.

    uvicorn's httptools protocol sets no limit of its own on header size, so without this any size is parsed and
    handed to the app; here such a request is answered at once and goes no further.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > self.max_bytes:
            body = orjson.dumps(
                {
                    "error": {
                        "message": f"request headers over {self.max_bytes} bytes",
                        "type": "invalid_request_error",
                        "code": "headers_too_large",
                        "param": None,
                    }
                }
            )
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 431, "headers": [*headers, (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
