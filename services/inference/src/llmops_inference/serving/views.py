"""The OpenAI-compatible surface. Views are thin: the work is in ``serving.service``."""

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from llmops_common.errors import ERROR_RESPONSES
from llmops_inference.deps import StateDep, require_serving
from llmops_inference.serving import service

router = APIRouter(
    prefix="/v1", tags=["openai"], dependencies=[Depends(require_serving)], responses=ERROR_RESPONSES
)  # every error in the documented body

_BODY_DOC = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}}


@router.post("/chat/completions", openapi_extra=_BODY_DOC)
async def chat_completions(request: Request, state: StateDep) -> Response:
    return await service.relay(state, request, path="/v1/chat/completions", endpoint="chat")


@router.post("/completions", openapi_extra=_BODY_DOC)
async def completions(request: Request, state: StateDep) -> Response:
    return await service.relay(state, request, path="/v1/completions", endpoint="text")


@router.get("/models")
async def models(state: StateDep) -> Response:
    """The base model and every loaded adapter."""
    return await service.models(state)
