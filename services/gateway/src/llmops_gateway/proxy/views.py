"""The OpenAI-compatible surface. Views are thin: the work is in ``proxy.service``.

The two completion endpoints are plain Starlette routes: FastAPI's per-request dependency and query
parsing cost about a tenth of the gateway's whole budget, and these views need neither (the body is
validated in ``proxy.service``, errors are the app's). They are documented by OpenAI's API reference.
"""

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from llmops_common.responses import OrjsonResponse
from llmops_gateway.deps import GatewayDep
from llmops_gateway.proxy import service

router = APIRouter(tags=["openai"])


async def chat_completions(request: Request) -> Response:
    return await service.complete(request.app.state.gateway, request, kind="chat")


async def completions(request: Request) -> Response:
    return await service.complete(request.app.state.gateway, request, kind="text")


router.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
router.add_route("/v1/completions", completions, methods=["POST"])


@router.get("/v1/models")
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
