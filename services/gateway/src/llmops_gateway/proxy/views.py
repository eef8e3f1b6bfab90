"""The OpenAI-compatible surface. Views are thin: the work is in ``proxy.service``.

``POST /v1/chat/completions`` and ``POST /v1/completions`` are served by ``proxy.front``, ahead of the app's
middleware and router (documented by OpenAI's API reference); ``/v1/models`` is an ordinary route.
"""

import time

from fastapi import APIRouter, Request

from llmops_common.responses import OrjsonResponse
from llmops_gateway.deps import GatewayDep

router = APIRouter(tags=["openai"])


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
