"""FastAPI dependencies shared by the inference service's views."""

from typing import Annotated

from fastapi import Depends, Request

from llmops_common.auth import require_token
from llmops_inference.state import InferenceState


async def get_state(request: Request) -> InferenceState:
    return request.app.state.inference


StateDep = Annotated[InferenceState, Depends(get_state)]


async def require_admin(request: Request, state: StateDep) -> None:
    require_token(request, state.admin_token, code="invalid_admin_token")
