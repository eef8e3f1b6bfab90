"""``POST /v1/embeddings``: the body read within the size limit, the pipeline's reply written as it is."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmops_common.contracts.embeddings import EmbeddingRequest
from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import json_body
from llmops_common.requests import read_body
from llmops_gateway.embeddings.pipeline import EmbeddingPipeline
from llmops_gateway.proxy.pipeline import BatchLine

router = APIRouter(tags=["openai"], responses=ERROR_RESPONSES)


@router.post(
    "/v1/embeddings",
    openapi_extra=json_body(EmbeddingRequest),
    responses={200: {"description": "The upstream's OpenAI embeddings list"}},
)
async def embeddings(request: Request) -> Response:
    """OpenAI embeddings of a text, texts or token arrays; `encoding_format` float or base64."""
    pipeline: EmbeddingPipeline = request.app.state.embeddings
    body = await read_body(request, max_bytes=pipeline.max_body_bytes)
    reply = await pipeline.run(
        request_id=request.scope["state"]["request_id"],
        authorization=request.headers.get("authorization"),
        body=body,
        batch=BatchLine.of(request.headers),
        scope=request.scope,
    )
    return Response(reply.body, status_code=reply.status, headers=reply.headers)
