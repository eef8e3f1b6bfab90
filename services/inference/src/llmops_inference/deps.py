"""FastAPI dependencies shared by the inference service's views."""

from typing import Annotated

from fastapi import Depends, Request

from llmops_common.auth import bearer_token, require_token, token_matches, unauthorized
from llmops_inference.state import InferenceState


async def get_state(request: Request) -> InferenceState:
    return request.app.state.inference


StateDep = Annotated[InferenceState, Depends(get_state)]


async def require_admin(request: Request, state: StateDep) -> None:
    require_token(request, state.admin_token, code="invalid_admin_token")


async def require_serving(request: Request, state: StateDep) -> None:
    """The serving token (or the admin token) on /v1/*, where one is configured."""
    if state.serving_token is None:
        return
    token = bearer_token(request)
    if not (token_matches(token, state.serving_token) or token_matches(token, state.admin_token)):
        raise unauthorized("serving or admin token required", code="invalid_api_key")
