"""Dependencies: the state, who is calling, and request bodies read within a size limit."""

from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from llmops_common.auth import bearer_token, require_token, token_matches, unauthorized
from llmops_common.requests import read_body
from llmops_retriever.state import RetrieverState

M = TypeVar("M", bound=BaseModel)


async def get_state(request: Request) -> RetrieverState:
    return request.app.state.retriever


StateDep = Annotated[RetrieverState, Depends(get_state)]


async def require_admin(request: Request, state: StateDep) -> None:
    require_token(request, state.admin_token)


async def require_reader(request: Request, state: StateDep) -> None:
    """Searches and reads: the read token (the gateway's) or the admin token."""
    token = bearer_token(request)
    if not (token_matches(token, state.read_token) or token_matches(token, state.admin_token)):
        raise unauthorized("read or admin token required")


AdminDep = Annotated[None, Depends(require_admin)]
ReaderDep = Annotated[None, Depends(require_reader)]


async def read_json(request: Request, model: type[M], *, max_bytes: int) -> M:
    """A JSON body validated by ``model``; the same 422 as FastAPI's own validation."""
    body = await read_body(request, max_bytes=max_bytes)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
