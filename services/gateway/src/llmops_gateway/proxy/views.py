"""The OpenAI-compatible surface: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``.

A completion has one path, whatever ASGI server runs the app: a ``CompletionEndpoint`` (a plain ASGI endpoint in
the app's router, behind the same middleware as every other route) reads the body (one size limit), runs the
pipeline while watching for the client to leave (one disconnect rule), and writes the answer whole or streamed
(one writer each) or an error (``llmops_common.errors.error_response``, the renderer every other endpoint uses).
It is not a FastAPI route: FastAPI's request handling (dependency solving, its exit stack) cost about 50 µs a
request, half as much again as all the gateway's own work; ``document`` puts the endpoints into ``/openapi.json``.
"""

import contextlib
import logging
import time

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from llmops_common.errors import ERROR_RESPONSES, APIError, error_response, internal_error_response
from llmops_common.openapi import json_body
from llmops_common.requests import read_body
from llmops_common.responses import OrjsonResponse
from llmops_common.streaming import ClientDisconnected, cancelled_on_disconnect
from llmops_gateway.deps import AuthenticatorDep, RoutesDep
from llmops_gateway.proxy.pipeline import BatchLine, CompletionPipeline
from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest

logger = logging.getLogger(__name__)

router = APIRouter(tags=["openai"], responses=ERROR_RESPONSES)


class CompletionEndpoint:
    """``kind``: "chat" or "text". The pipeline is the app's (``app.state.pipeline``, built in its lifespan)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        pipeline: CompletionPipeline = scope["app"].state.pipeline
        started = False  # the response head went out: too late for an error status
        try:
            body = await read_body(request, max_bytes=pipeline.max_body_bytes)
            async with cancelled_on_disconnect(request):
                reply = await pipeline.run(
                    kind=self.kind,
                    request_id=scope["state"]["request_id"],
                    authorization=request.headers.get("authorization"),
                    body=body,
                    batch=BatchLine.of(request.headers),
                    request_headers=request.headers,
                    scope=scope,
                )
                if reply.stream is not None:  # all but the last, empty, message; closing it early = the client left
                    async with contextlib.aclosing(reply.stream) as stream:
                        await send(
                            {"type": "http.response.start", "status": reply.status, "headers": _raw(reply.headers)}
                        )
                        started = True
                        async for data in stream:
                            await send({"type": "http.response.body", "body": data, "more_body": True})
        except APIError as exc:
            await error_response(exc)(scope, receive, send)
            return
        except ClientDisconnected:
            return  # nobody to answer; the pipeline has accounted for it
        except ClientDisconnect:
            return  # left while sending its body: nothing was run, nobody to answer
        except Exception:
            if started:
                raise  # the server cuts the connection: the only signal left mid-stream
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


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


COMPLETIONS = {"/v1/chat/completions": ("chat", ChatCompletionRequest), "/v1/completions": ("text", CompletionRequest)}
routes = [Route(path, CompletionEndpoint(kind), methods=["POST"]) for path, (kind, _) in COMPLETIONS.items()]


def document(app: FastAPI) -> None:
    """Adds the completion endpoints to the app's OpenAPI document, from the models their bodies are checked with."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for path, (kind, model) in COMPLETIONS.items():
                schema["paths"][path] = {"post": _operation(kind, model)}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _operation(kind: str, model) -> dict:
    what = "chat completions" if kind == "chat" else "text completions"
    return {
        "tags": ["openai"],
        "summary": f"OpenAI {what}",
        "description": f"OpenAI {what}, routed to the model's variants; `rag` (an extension) adds retrieved context.",
        "operationId": f"{kind}_completions",
        **json_body(model),
        "responses": {
            "200": {
                "description": "The upstream's answer (JSON), or with `stream: true` server-sent events ending in a usage chunk"
            },
            **ERROR_RESPONSES,
        },
    }


@router.get("/v1/models")
async def models(request: Request, authenticator: AuthenticatorDep, routes: RoutesDep) -> OrjsonResponse:
    """The routes this key may use, and the retriever's embedding models, as OpenAI models."""
    key = await authenticator.authenticate(request.headers.get("authorization"), request.scope)
    now = int(time.time())
    names = sorted({*await routes.names(), *request.app.state.embeddings.default_models()})
    data = [
        {"id": name, "object": "model", "created": now, "owned_by": "llmops"} for name in names if key.may_use(name)
    ]
    return OrjsonResponse({"object": "list", "data": data})
