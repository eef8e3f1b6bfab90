"""The completion endpoints as a plain ASGI front to the FastAPI app, for any ASGI server.

``python -m llmops_gateway`` serves them natively instead (``proxy.native``); this front keeps the app complete
wherever else it runs (``uvicorn llmops_gateway.app:create_app --factory``, other ASGI servers, tests). It skips
Starlette's and FastAPI's middleware layers and router, which the completion endpoints do not need: request ids
come from the same middleware class and errors are rendered as the app renders them. Every other path goes to
the app.
"""

import logging

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llmops_common.errors import APIError, error_response, internal_error_response
from llmops_common.middleware import RequestIdMiddleware
from llmops_common.requests import read_body
from llmops_common.streaming import DisconnectAwareStream, cancelled_on_disconnect
from llmops_gateway.proxy import service

logger = logging.getLogger(__name__)

COMPLETION_PATHS = {"/v1/chat/completions": "chat", "/v1/completions": "text"}


class AsgiExchange:
    """``proxy.exchange.Exchange`` over an ASGI request."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.request = Request(scope, receive)
        self.request_id = scope["state"]["request_id"]

    def header(self, name: bytes) -> str | None:
        return self.request.headers.get(name.decode())

    async def body(self, max_bytes: int) -> bytes:
        return await read_body(self.request, max_bytes=max_bytes)

    def cancelled_on_disconnect(self):
        return cancelled_on_disconnect(self.request)


class CompletionsFront:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._completions = RequestIdMiddleware(self._complete)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in COMPLETION_PATHS:
            await self._completions(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _complete(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            reply = await service.complete(
                self.app.state.gateway, AsgiExchange(scope, receive), kind=COMPLETION_PATHS[scope["path"]]
            )
            if reply.stream is not None:
                response = DisconnectAwareStream(reply.stream, status_code=reply.status, headers=reply.headers)
            else:
                response = Response(reply.body, status_code=reply.status, headers=reply.headers)
        except APIError as exc:
            response = error_response(exc)
        except Exception:
            logger.exception("unhandled error")
            response = internal_error_response()
        await response(scope, receive, send)
