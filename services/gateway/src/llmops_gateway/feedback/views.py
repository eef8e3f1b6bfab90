"""``POST /v1/feedback`` with a client's key: validated, then forwarded to the feedback service (or spooled while it
is down), scoped to that key's requests."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from llmops_common.contracts.ratings import RatingAccepted, RatingIn
from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.openapi import json_body
from llmops_common.requests import read_body
from llmops_gateway.deps import AuthenticatorDep, RatingsDep
from llmops_gateway.feedback import service

router = APIRouter(prefix="/v1", tags=["feedback"], responses=ERROR_RESPONSES)

_MAX_RATING_BYTES = 256 * 1024  # a 32k-character correction in UTF-8, escaped, fits
_BODY_DOC = json_body(RatingIn)  # the contract the body is validated with


@router.post(
    "/feedback",
    status_code=201,
    openapi_extra=_BODY_DOC,
    responses={202: {"model": RatingAccepted, "description": "accepted for delivery (pending or queued)"}},
)
async def feedback(request: Request, authenticator: AuthenticatorDep, ratings: RatingsDep) -> Response:
    """``{"request_id", "rating": "up"|"down", "comment"?, "correction"?, "idempotency_key"?}``. A key may rate only
    its own requests. 201: rated; 202: accepted for delivery (``status`` ``pending``: waiting for the request's
    record; ``queued``: waiting on the gateway for the feedback service); 400/422 in the OpenAI error format."""
    key = await authenticator.authenticate(request.headers.get("authorization"), request.scope)
    if ratings is None:
        raise APIError(503, "no feedback service is configured", code="feedback_unavailable")
    delivery = service.prepare(await read_body(request, max_bytes=_MAX_RATING_BYTES), key_id=key.id)
    status, content = await service.submit(ratings, delivery, request_id=request.scope["state"]["request_id"])
    return Response(content, status_code=status, media_type="application/json")
