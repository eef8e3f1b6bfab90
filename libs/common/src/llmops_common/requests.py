"""Reading request bodies at the edge, with a size limit."""

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
