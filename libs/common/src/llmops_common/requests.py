"""Reading request bodies at the edge: a size limit, then JSON."""

import orjson
from starlette.requests import Request

from llmops_common.errors import APIError


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to be over ``max_bytes`` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise APIError(413, f"request body over {max_bytes} bytes", code="request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise APIError(413, f"request body over {max_bytes} bytes", code="request_too_large")
    return bytes(body)


def parse_json_object(body: bytes) -> dict:
    """The body as a JSON object, else 400 ``invalid_json``."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    return payload
