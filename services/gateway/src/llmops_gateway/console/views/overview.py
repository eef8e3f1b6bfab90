"""The overview: keys and routes at a glance, and the last 24 hours of traffic, latency and ratings per route and
variant from the feedback service's quality summary. A service that does not answer greys out its part only."""

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from llmops_gateway.console.backends import BackendError
from llmops_gateway.console.deps import ConsoleDep, SessionDep
from llmops_gateway.console.render import money, page
from llmops_gateway.deps import SessionDep as DbDep
from llmops_gateway.deps import SettingsDep
from llmops_gateway.keys import service as keys_service
from llmops_gateway.routing import service as routes_service
from llmops_gateway.spend import service as spend_service
from llmops_gateway.spend.schemas import SpendBy

router = APIRouter(prefix="/console", include_in_schema=False)


async def _or_error(call):
    try:
        return await call, None
    except BackendError as exc:
        return None, exc.message


@router.get("/")
async def overview(
    request: Request, session: SessionDep, console: ConsoleDep, db: DbDep, settings: SettingsDep
) -> Response:
    if session.identity.team is not None:  # the overview is the whole platform's: a team-admin starts at its keys
        return RedirectResponse("/console/keys", status_code=303)
    keys = await keys_service.list_all(db)
    routes = await routes_service.list_all(db)
    until = datetime.now(UTC)
    params = {"since": (until - timedelta(days=1)).isoformat(), "until": until.isoformat()}
    (quality, quality_error), (collections, collections_error) = await asyncio.gather(
        _or_error(console.feedback.request("GET", "/v1/quality", params=params)),
        _or_error(console.retriever.request("GET", "/v1/collections")),
    )
    spend = {  # the gateway's own spend records, in SQL: the same 24 hours by route and by variant
        by: await spend_service.report(db, since=until - timedelta(days=1), currency=settings.currency, by=by)
        for by in (SpendBy.route, SpendBy.variant)
    }
    spend_rows = {
        by.value: [
            {"label": g.group, "cost_value": float(g.cost), "display": money(g.cost), "spend": g} for g in report.groups
        ]
        for by, report in spend.items()
    }
    active = sum(1 for k in keys if k.revoked_at is None)
    variants = (quality or {}).get("variants", [])
    for v in variants:
        v["avg_latency"] = v.get("avg_latency_ms") or 0
        v.setdefault("errors", 0)  # a feedback service from before the summary counted them
    return page(
        request,
        "overview.html",
        title="Overview",
        active_keys=active,
        all_keys=len(keys),
        routes=len(routes),
        variants=variants,
        quality_error=quality_error,
        collections=(collections or {}).get("data", []),
        collections_error=collections_error,
        spend_total=spend[SpendBy.route].total,
        spend_rows=spend_rows,
        currency=settings.currency,
    )


@router.get("")
async def overview_slashless() -> Response:
    return RedirectResponse("/console/", status_code=308)
