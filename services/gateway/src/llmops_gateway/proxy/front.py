"""The completion endpoints as a plain ASGI front to the FastAPI app.

Between uvicorn and a view, Starlette and FastAPI run four middleware layers and a router, about 7% of the
gateway's CPU per proxied request (py-spy). The completion endpoints need none of them: request ids come from the
same middleware class and errors are rendered as the app renders them. Every other path goes to the app.
"""

import logging

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from llmops_common.errors import APIError, error_response, internal_error_response
from llmops_common.middleware import RequestIdMiddleware
from llmops_gateway.proxy import service

logger = logging.getLogger(__name__)

COMPLETION_PATHS = {"/v1/chat/completions": "chat", "/v1/completions": "text"}


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
        request = Request(scope, receive)
        try:
            response = await service.complete(self.app.state.gateway, request, kind=COMPLETION_PATHS[scope["path"]])
        except APIError as exc:
            response = error_response(exc)
        except Exception:
            logger.exception("unhandled error")
            response = internal_error_response()
        await response(scope, receive, send)
