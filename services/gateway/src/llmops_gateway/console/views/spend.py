"""Spend: the gateway's spend records over a window, grouped by route, variant, team or key, narrowed to one team or
key. Read in-process through the same service function as ``GET /admin/spend``."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from llmops_gateway.console.backends import BackendError, gateway_errors
from llmops_gateway.console.deps import SessionDep
from llmops_gateway.console.render import money, page
from llmops_gateway.deps import SessionDep as DbDep
from llmops_gateway.deps import SettingsDep
from llmops_gateway.keys import service as keys_service
from llmops_gateway.spend import service
from llmops_gateway.spend.schemas import SpendBy
from llmops_gateway.spend.views import parse_since

router = APIRouter(prefix="/console/spend", include_in_schema=False)

WINDOWS = (("24h", "last 24 hours"), ("7d", "last 7 days"), ("30d", "last 30 days"), ("13w", "last 13 weeks"))
Text = Annotated[str, Query(max_length=64)]


def over_time(hours: list, *, since: datetime, hourly: bool) -> list[dict]:
    """Spend per hour (a 24-hour window) or per day (UTC), every bucket from ``since`` to now, empty ones as 0."""
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    start = since if hourly else since.replace(hour=0)
    sums: dict[datetime, list] = {}
    for hour, requests, cost in hours:
        bucket = hour if hourly else hour.replace(hour=0)
        total = sums.setdefault(bucket, [0, Decimal(0)])
        total[0] += requests
        total[1] += cost
    points, moment, now = [], start, datetime.now(UTC)
    while moment <= now:
        requests, cost = sums.get(moment, (0, Decimal(0)))
        label = moment.strftime("%H:00" if hourly else "%m-%d")
        points.append({"label": label, "requests": requests, "cost": cost, "cost_value": float(cost)})
        moment += step
    return points


@router.get("")
async def spend(
    request: Request,
    session: SessionDep,
    db: DbDep,
    settings: SettingsDep,
    since: Text = "30d",
    by: Text = "route",
    team: Text = "",
    key: Text = "",
) -> Response:
    if since not in dict(WINDOWS):
        raise BackendError("console", f"window: {since!r} is not one of {', '.join(dict(WINDOWS))}", status=400)
    if by not in SpendBy.__members__:
        raise BackendError("console", f"group by: {by!r} is not one of {', '.join(SpendBy)}", status=400)
    async with gateway_errors():
        team = session.identity.team_filter(team or None) or ""  # a team-admin reads its own team's spend only
        report = await service.report(
            db,
            since=parse_since(since),
            currency=settings.currency,
            team=team or None,
            key_id=key or None,
            by=SpendBy(by),
        )
        hours = await service.hourly(db, since=parse_since(since), team=team or None, key_id=key or None)
    names = {k.id: k.name for k in await keys_service.list_all(db)} if by == SpendBy.key else {}
    rows = [
        {
            "group": g.group,
            "label": names.get(g.group, g.group),
            "cost_value": float(g.cost),
            "display": money(g.cost),
            "spend": g,
        }
        for g in report.groups
    ]
    return page(
        request,
        "spend.html",
        title="Spend",
        report=report,
        rows=rows,
        series=over_time(hours, since=report.since, hourly=since == "24h"),
        windows=WINDOWS,
        groupings=list(SpendBy),
        query={"since": since, "by": by, "team": team, "key": key},
    )
