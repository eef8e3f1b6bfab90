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
    """A serving token (the current one, or an earlier one during a rotation) or the admin token on /v1/*, unless
    the surface is open (``InferenceSettings.serving_tokens``)."""
    if not state.serving_tokens:
        return
    token = bearer_token(request)
    if not any(token_matches(token, secret) for secret in (*state.serving_tokens, state.admin_token)):
        raise unauthorized("serving or admin token required", code="invalid_api_key")
