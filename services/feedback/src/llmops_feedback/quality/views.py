from datetime import datetime, timedelta

from fastapi import APIRouter

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.sql import utcnow
from llmops_feedback.deps import AdminDep, SessionDep
from llmops_feedback.quality import service
from llmops_feedback.quality.schemas import QualitySummary

router = APIRouter(prefix="/v1/quality", tags=["quality"], responses=ERROR_RESPONSES)


@router.get("")
async def quality(
    _: AdminDep,
    session: SessionDep,
    since: datetime | None = None,
    until: datetime | None = None,
    route: str | None = None,
    variant: str | None = None,
    by_prompt: bool = False,
) -> QualitySummary:
    """Per route and variant between ``since`` and ``until`` (default: the last 24 hours); ``by_prompt``: also per
    prompt name and version."""
    until = until or utcnow()
    since = since or until - timedelta(days=1)
    if since.tzinfo is None or until.tzinfo is None:
        raise APIError(422, "since and until need a timezone", code="invalid_request")
    if since >= until:
        raise APIError(422, "since must be before until", code="invalid_request")
    return await service.summarize(session, since=since, until=until, route=route, variant=variant, by_prompt=by_prompt)
