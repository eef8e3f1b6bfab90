"""The OpenAI-compatible surface: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``.

A completion has one path, whatever ASGI server runs the app: the view returns a ``CompletionResponse``, which
reads the body (one size limit), runs the pipeline while watching for the client to leave (one disconnect rule),
and writes the answer whole or streamed (one writer each) or an error (``llmops_common.errors.error_response``, the
renderer every other endpoint uses). Views stay thin: the work is in ``proxy.pipeline``.
"""

import contextlib
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llmops_common.errors import APIError, error_response, internal_error_response
from llmops_common.requests import read_body
from llmops_common.responses import OrjsonResponse
from llmops_common.streaming import ClientDisconnected, cancelled_on_disconnect
from llmops_gateway.deps import AuthenticatorDep, RoutesDep
from llmops_gateway.proxy.pipeline import CompletionPipeline, Reply
from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest, openapi_body

logger = logging.getLogger(__name__)

router = APIRouter(tags=["openai"])


def get_pipeline(request: Request) -> CompletionPipeline:
    return request.app.state.pipeline


PipelineDep = Annotated[CompletionPipeline, Depends(get_pipeline)]


class CompletionResponse(Response):
    """An ASGI response that is the whole completion: the work runs as the server sends it."""

    def __init__(self, pipeline: CompletionPipeline, request: Request, *, kind: str) -> None:
        self.pipeline, self.request, self.kind = pipeline, request, kind
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = self.request
        try:
            body = await read_body(request, max_bytes=self.pipeline.max_body_bytes)
            async with cancelled_on_disconnect(request):
                reply = await self.pipeline.run(
                    kind=self.kind,
                    request_id=scope["state"]["request_id"],
                    authorization=request.headers.get("authorization"),
                    body=body,
                )
                if reply.stream is not None:
                    await self._stream(reply, send)
        except APIError as exc:
            await error_response(exc)(scope, receive, send)
            return
        except ClientDisconnected:
            return  # nobody to answer; the pipeline has accounted for it
        except Exception:
            logger.exception("unhandled error")
            await internal_error_response()(scope, receive, send)
            return
        # Outside the watch: the last message completes the response, which the watch would take for a disconnect.
        if reply.stream is not None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            headers = _raw(reply.headers)
            headers.append((b"content-length", str(len(reply.body)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body, "more_body": False})

    @staticmethod
    async def _stream(reply: Reply, send: Send) -> None:
        """Everything but the last, empty, message; closing the stream early tells the pipeline the client left."""
        async with contextlib.aclosing(reply.stream) as stream:
            await send({"type": "http.response.start", "status": reply.status, "headers": _raw(reply.headers)})
            async for data in stream:
                await send({"type": "http.response.body", "body": data, "more_body": True})


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


_ANSWERS = {
    200: {
        "description": "The upstream's answer (JSON), or with `stream: true` server-sent events ending in a usage chunk"
    }
}


@router.post(
    "/v1/chat/completions",
    response_class=Response,
    responses=_ANSWERS,
    openapi_extra=openapi_body(ChatCompletionRequest),
)
async def chat_completions(request: Request, pipeline: PipelineDep) -> Response:
    """OpenAI chat completions, routed to the model's variants; `rag` (an extension) adds retrieved context."""
    return CompletionResponse(pipeline, request, kind="chat")


@router.post(
    "/v1/completions", response_class=Response, responses=_ANSWERS, openapi_extra=openapi_body(CompletionRequest)
)
async def completions(request: Request, pipeline: PipelineDep) -> Response:
    """OpenAI text completions, routed like chat completions."""
    return CompletionResponse(pipeline, request, kind="text")


@router.get("/v1/models")
async def models(request: Request, authenticator: AuthenticatorDep, routes: RoutesDep) -> OrjsonResponse:
    """The routes this key may use, as OpenAI models."""
    key = await authenticator.authenticate(request.headers.get("authorization"))
    now = int(time.time())
    data = [
        {"id": name, "object": "model", "created": now, "owned_by": "llmops"}
        for name in await routes.names()
        if key.may_use(name)
    ]
    return OrjsonResponse({"object": "list", "data": data})
