"""Dependencies: the state, who is calling, and request bodies read within a size limit."""

import hmac
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from llmops_common.errors import APIError
from llmops_common.requests import read_body
from llmops_retriever.state import RetrieverState

M = TypeVar("M", bound=BaseModel)


async def get_state(request: Request) -> RetrieverState:
    return request.app.state.retriever


StateDep = Annotated[RetrieverState, Depends(get_state)]


def _bearer(request: Request) -> str:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _matches(token: str, secret: str) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), secret.encode())


def _unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_token", headers={"WWW-Authenticate": "Bearer"})


async def require_admin(request: Request, state: StateDep) -> None:
    if not _matches(_bearer(request), state.admin_token):
        raise _unauthorized("admin token required")


async def require_reader(request: Request, state: StateDep) -> None:
    """Searches and reads: the read token (the gateway's) or the admin token."""
    token = _bearer(request)
    if not (_matches(token, state.read_token) or _matches(token, state.admin_token)):
        raise _unauthorized("read or admin token required")


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


def json_body_doc(model: type[BaseModel]) -> dict:
    """OpenAPI for a body read by ``read_json`` (FastAPI cannot see it)."""
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}}
