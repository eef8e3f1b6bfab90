"""The OpenAI-compatible surface. Views are thin: the work is in ``proxy.service``."""

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from llmops_common.responses import OrjsonResponse
from llmops_gateway.deps import GatewayDep
from llmops_gateway.proxy import service

router = APIRouter(prefix="/v1", tags=["openai"])

_BODY_DOC = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}}


@router.post("/chat/completions", openapi_extra=_BODY_DOC)
async def chat_completions(request: Request, gw: GatewayDep) -> Response:
    return await service.complete(gw, request, kind="chat")


@router.post("/completions", openapi_extra=_BODY_DOC)
async def completions(request: Request, gw: GatewayDep) -> Response:
    return await service.complete(gw, request, kind="text")


@router.get("/models")
async def models(request: Request, gw: GatewayDep) -> OrjsonResponse:
    """The routes this key may use, as OpenAI models."""
    key = await gw.authenticator.authenticate(request.headers.get("authorization"))
    now = int(time.time())
    data = [
        {"id": name, "object": "model", "created": now, "owned_by": "llmops"}
        for name in await gw.routes.names()
        if key.may_use(name)
    ]
    return OrjsonResponse({"object": "list", "data": data})
