from fastapi import APIRouter, Request

from llmops_common.contracts.embeddings import EmbeddingRequest, EmbeddingResponse
from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import json_body
from llmops_retriever.deps import ReaderDep, StateDep, read_json
from llmops_retriever.embedding import service

router = APIRouter(tags=["embeddings"], responses=ERROR_RESPONSES)  # every error in the documented body


@router.post("/v1/embeddings", openapi_extra=json_body(EmbeddingRequest))
async def embeddings(request: Request, _: ReaderDep, state: StateDep) -> EmbeddingResponse:
    """OpenAI-compatible embeddings of a text, texts or token arrays with one of the retriever's models."""
    body = await read_json(request, EmbeddingRequest, max_bytes=state.settings.max_body_bytes)
    response = await service.embed(state.models, body)
    state.metrics.embeddings.labels(body.model).inc(len(response.data))
    return response
