"""Admin view of the vLLM process: state, pid, generation, restarts."""

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from llmops_common.errors import ERROR_RESPONSES
from llmops_inference.deps import StateDep, require_admin

router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=ERROR_RESPONSES
)  # every error in the documented body


class EngineStatus(BaseModel):
    state: str
    pid: int | None
    generation: int  # starts so far; run-time adapters live as long as one generation
    restarts: int
    last_exit: str | None
    url: str  # vLLM's own server: /metrics and /health need no key
    log_path: str
    model: str
    served_model_name: str
    max_loras: int | None  # adapter slots in one batch; None when LoRA is off


@router.get("/engine")
async def engine_status(state: StateDep) -> EngineStatus:
    engine = state.engine
    return EngineStatus(
        state=engine.state.value,
        pid=engine.pid,
        generation=engine.generation,
        restarts=engine.restarts,
        last_exit=engine.last_exit,
        url=state.settings.vllm_url,
        log_path=str(engine.log_path),
        model=state.settings.model_source(),
        served_model_name=state.base_model,
        max_loras=state.settings.max_loras if state.settings.enable_lora else None,
    )
