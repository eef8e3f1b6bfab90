from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from llmops_common.contracts.requestlog import RequestLogBatch
from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.openapi import link, links
from llmops_feedback.deps import AdminDep, IngestDep, SessionDep, StateDep
from llmops_feedback.ratings import pending
from llmops_feedback.ratings.store import to_public
from llmops_feedback.records import browse, service
from llmops_feedback.records.schemas import IngestResult, RequestPage, RequestPublic

# A team's keys travel in the query string: this many keep it within what HTTP servers accept (about 14 kB).
MAX_KEY_IDS = 500

router = APIRouter(prefix="/v1/requests", tags=["request log"], responses=ERROR_RESPONSES)


_FIRST = "$request.body#/records/0/request_id"


@router.post(
    "",
    openapi_extra=links(
        200,
        read_first=link("get", "/v1/requests/{request_id}", request_id=_FIRST),
        rate_first=link("post", "/v1/feedback", body={"request_id": _FIRST}),
    ),
)
async def ingest(batch: RequestLogBatch, _: IngestDep, session: SessionDep, state: StateDep) -> IngestResult:
    """Stores request records; idempotent on ``request_id``, so the gateway may deliver a batch again. Ratings
    waiting for these records are attached (or discarded, if another key gave them)."""
    if len(batch.records) > state.settings.max_batch:
        raise APIError(413, f"at most {state.settings.max_batch} records per batch", code="batch_too_large")
    inserted = await service.ingest(session, records=batch.records, store_text=state.settings.store_text)
    for record in inserted:
        state.metrics.records.labels(record.route, record.variant).inc()
    duplicates = len(batch.records) - len(inserted)
    state.metrics.duplicates.inc(duplicates)
    # Every id of the batch, not only the new ones: a rating held while its record was being stored is found here.
    state.metrics.count_attached(await pending.attach(session, request_ids=[r.request_id for r in batch.records]))
    return IngestResult(inserted=len(inserted), duplicates=duplicates)


@router.get("")
async def list_requests(
    _: AdminDep,
    session: SessionDep,
    route: str | None = None,
    variant: str | None = None,
    key_id: Annotated[
        list[str] | None, Query(max_length=MAX_KEY_IDS, description="repeat it for the requests of any of these keys")
    ] = None,
    rating: browse.RatingFilter | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: str | None = Query(default=None, description="the next_cursor of the page before"),
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RequestPage:
    """The request log, newest first: filtered by route, variant, the key that made it (``key_id``, repeated: any of
    those keys; a console team-admin's view is its team's keys), current rating (up, down, rated, unrated) and start
    time (``since`` inclusive, ``until`` exclusive)."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise APIError(422, f"{name} needs a timezone", code="invalid_request")
    rows = await browse.search(
        session,
        route=route,
        variant=variant,
        key_ids=key_id,
        rating=rating,
        since=since,
        until=until,
        before=_cursor(before) if before else None,
        limit=limit,
    )
    last = rows[-1] if len(rows) == limit else None
    return RequestPage(data=rows, next_cursor=f"{last.started_at.isoformat()}|{last.request_id}" if last else None)


def _cursor(value: str) -> tuple[datetime, str]:
    started, sep, request_id = value.partition("|")
    try:
        moment = datetime.fromisoformat(started)
    except ValueError:
        moment = None
    if not sep or not request_id or moment is None or moment.tzinfo is None:
        raise APIError(422, "before must be a next_cursor from an earlier page", code="invalid_cursor")
    return moment, request_id


@router.get("/{request_id}")
async def get_request(request_id: str, _: AdminDep, session: SessionDep) -> RequestPublic:
    record = await service.get(session, request_id=request_id)
    history = [to_public(r) for r in await service.ratings_of(session, request_id=request_id)]
    current = next((r for r in reversed(history) if r.current), None)
    fields = {c: getattr(record, c) for c in RequestPublic.model_fields if hasattr(record, c)}
    return RequestPublic(**fields, rating=current, rating_history=history)
