"""The feedback browser: the request log filtered by route, variant, rating and time, with the quality summary
of the same window; a request's prompt, answer, sources, rating history and judge scores. All read from the feedback
service's admin API. A team-admin reads the requests of its team's keys only (the quality summary, which counts
every team's requests, is not shown to it)."""

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from llmops_gateway.admin.auth import Identity
from llmops_gateway.admin.schemas import Role
from llmops_gateway.console.backends import BackendError
from llmops_gateway.console.deps import ConsoleDep, SessionDep
from llmops_gateway.console.render import page
from llmops_gateway.deps import SessionDep as DbDep
from llmops_gateway.keys import service as keys_service

router = APIRouter(prefix="/console/feedback", include_in_schema=False)

RATINGS = ("", "up", "down", "rated", "unrated")


def _utc(value: str | None, *, label: str) -> datetime | None:
    """A ``datetime-local`` input, read as UTC (the page says so)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BackendError("console", f"{label}: {value!r} is not a date and time", status=400) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _key_scope(db, identity: Identity, key: str) -> list[str] | None:
    """The keys whose requests this identity reads (None: every key's). A team-admin: its team's keys, or the one
    asked for if it is one of them; another team's key reads as a key without requests."""
    if identity.role is not Role.team_admin:
        return [key] if key else None
    team_keys = await keys_service.ids_of_team(db, team=identity.team)
    if key:
        return [key] if key in team_keys else []
    return team_keys


@router.get("")
async def browse(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    db: DbDep,
    route: str = "",
    variant: str = "",
    key: str = "",
    rating: str = "",
    since: str = "",
    until: str = "",
    before: str = "",
) -> Response:
    if rating not in RATINGS:
        raise BackendError("console", f"rating must be one of up, down, rated, unrated (not {rating!r})", status=400)
    start, end = _utc(since, label="From"), _utc(until, label="Until")
    # The quality summary needs a window: the one asked for, else the last 24 hours.
    window_end = end or datetime.now(UTC)
    window_start = start or window_end - timedelta(days=1)
    if window_start >= window_end:
        raise BackendError("console", "“From” must be before “Until”", status=400)
    filters = {"route": route, "variant": variant, "rating": rating}
    key_ids = await _key_scope(db, session.identity, key)
    requests = {"data": [], "next_cursor": None}
    if key_ids != []:  # no keys, no requests (an empty filter would be every key's)
        requests = await console.feedback.request(
            "GET",
            "/v1/requests",
            params={
                "key_id": key_ids,
                **filters,
                "since": start and start.isoformat(),
                "until": end and end.isoformat(),
                "before": before,
                "limit": 50,
            },
        )
    quality = None
    if session.identity.role is not Role.team_admin:
        quality = await console.feedback.request(
            "GET",
            "/v1/quality",
            params={
                "route": route,
                "variant": variant,
                "since": window_start.isoformat(),
                "until": window_end.isoformat(),
            },
        )
    query = {**filters, "key": key, "since": since, "until": until}
    return page(
        request,
        "feedback.html",
        title="Feedback",
        requests=requests["data"],
        next_cursor=requests.get("next_cursor"),
        quality=quality,
        query=query,
        ratings=RATINGS,
        window=(window_start, window_end),
    )


@router.get("/requests/{request_id}")
async def request_detail(
    request_id: str, request: Request, session: SessionDep, console: ConsoleDep, db: DbDep
) -> Response:
    record = await console.feedback.request("GET", f"/v1/requests/{quote(request_id, safe='')}")
    key_ids = await _key_scope(db, session.identity, "")
    if key_ids is not None and record.get("key_id") not in key_ids:  # another team's request: as good as unknown
        raise BackendError("feedback", f"request {request_id!r} not found", status=404)
    scores, scores_error = [], None
    try:  # the judges' scores (LLM-as-judge workers, or posted by an offline judge): a part of the page only
        scores = await console.feedback.request("GET", f"/v1/evaluations/scores/{quote(request_id, safe='')}")
    except BackendError as exc:
        scores_error = exc.message
    return page(
        request,
        "request.html",
        title=f"Request {request_id}",
        record=record,
        scores=scores or [],
        scores_error=scores_error,
    )
