"""``POST /v1/feedback`` with a client's key: forwarded to the feedback service, scoped to that key's requests."""

import aiohttp
from fastapi import APIRouter, Request
from starlette.responses import Response

from llmops_common.errors import APIError
from llmops_common.requests import read_body
from llmops_gateway.deps import GatewayDep

router = APIRouter(prefix="/v1", tags=["feedback"])

_MAX_RATING_BYTES = 256 * 1024  # a 32k-character correction in UTF-8, escaped, fits
_BODY_DOC = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}}


@router.post("/feedback", status_code=201, openapi_extra=_BODY_DOC)
async def feedback(request: Request, gw: GatewayDep) -> Response:
    """``{"request_id", "rating": "up"|"down", "comment"?, "correction"?}``. A key may rate only its own
    requests; the feedback service validates the body and answers in the OpenAI error format."""
    key = await gw.authenticator.authenticate(request.headers.get("authorization"))
    settings = gw.settings
    if not settings.feedback_url:
        raise APIError(503, "no feedback service is configured", code="feedback_unavailable")
    body = await read_body(request, max_bytes=_MAX_RATING_BYTES)
    headers = {
        "authorization": f"Bearer {settings.feedback_token}",
        "x-llmops-key-id": key.id,
        "content-type": "application/json",
        "x-request-id": request.scope["state"]["request_id"],
    }
    try:
        async with gw.http.post(
            f"{settings.feedback_url.rstrip('/')}/v1/feedback", data=body, headers=headers
        ) as reply:
            content = await reply.read()
            if reply.status >= 500:
                raise APIError(503, "feedback service unavailable", code="feedback_unavailable")
            return Response(content, status_code=reply.status, media_type="application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise APIError(503, "feedback service unavailable", code="feedback_unavailable") from exc
