"""FastAPI dependencies shared by the inference service's views."""

import hmac
from typing import Annotated

from fastapi import Depends, Request

from llmops_common.errors import APIError
from llmops_inference.state import InferenceState


async def get_state(request: Request) -> InferenceState:
    return request.app.state.inference


StateDep = Annotated[InferenceState, Depends(get_state)]


async def require_admin(request: Request, state: StateDep) -> None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), state.admin_token.encode()):
        raise APIError(401, "admin token required", code="invalid_admin_token", headers={"WWW-Authenticate": "Bearer"})
