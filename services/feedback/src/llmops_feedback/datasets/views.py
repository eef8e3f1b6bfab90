from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from starlette.responses import StreamingResponse

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.openapi import text_answer
from llmops_feedback.datasets import service
from llmops_feedback.deps import AdminDep, StateDep

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=ERROR_RESPONSES)


@router.get(
    "/{kind}",
    response_class=StreamingResponse,
    responses=text_answer("application/x-ndjson", "the examples, one JSON object a line"),
)
async def export(
    kind: Literal["sft", "preference"],
    _: AdminDep,
    state: StateDep,
    route: str | None = None,
    variant: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    """JSONL, streamed: ``sft`` gives ``{"messages": [...]}`` chat examples, ``preference`` gives
    ``{"prompt", "chosen", "rejected"}`` pairs; each line carries its source request in ``metadata``."""
    for value in (since, until):
        if value is not None and value.tzinfo is None:
            raise APIError(422, "since and until need a timezone", code="invalid_request")
    filters = service.Filters(route=route, variant=variant, since=since, until=until)
    lines = service.sft_lines if kind == "sft" else service.preference_lines

    async def body():
        async with state.sessions() as session:  # opened here: it must live as long as the stream
            async for line in lines(session, filters):
                yield line

    return StreamingResponse(body(), media_type="application/x-ndjson")
