import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.openapi import link, links
from llmops_gateway.admin import audit
from llmops_gateway.deps import IdentityDep, PricesDep, SessionDep, SettingsDep, get_identity
from llmops_gateway.routing.schemas import NAME_PATTERN
from llmops_gateway.spend import prices, service
from llmops_gateway.spend.models import Price
from llmops_gateway.spend.schemas import PriceCreate, PriceList, PricePublic, SpendBy, SpendReport

# Roles: admins set prices; everyone reads them; a team-admin reads its own team's spend only.
router = APIRouter(tags=["admin: spend"], dependencies=[Depends(get_identity)], responses=ERROR_RESPONSES)

VariantName = Annotated[str, Path(pattern=NAME_PATTERN)]
_UNITS = {"h": 3600, "d": 86400, "w": 604800}
DURATION_PATTERN = r"^([0-9]{1,6})([hdw])$"
# A `since` is kept within these, whose hours datetimes can still hold (999999w back, year 1 at +23:59 or 9999 at
# -23:59 moved to UTC were 500s): nothing was spent or audited before 1970, and 9999 is as good as never.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
# What parse_since takes, in the document: a duration, or an RFC 3339 time (which always has a timezone).
SinceQuery = Query(
    max_length=64,
    description="a duration back from now (30d, 12h, 2w) or a time with a timezone; default 30 days",
    json_schema_extra={
        "anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "string", "format": "date-time"}]
    },
)


def parse_since(text: str | None) -> datetime:
    """``30d``, ``12h``, ``2w`` back from now, or an ISO time with a timezone; default 30 days. In UTC, never
    before ``EARLIEST``."""
    now = datetime.now(UTC)
    if not text:
        return now - timedelta(days=30)
    if match := re.fullmatch(DURATION_PATTERN, text):
        back = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
        return now - back if back < now - EARLIEST else EARLIEST
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        raise APIError(
            422, "since: give a duration like 30d, 12h, 2w or an ISO time with a timezone", code="invalid_since"
        )
    try:
        since = since.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved past the end of the calendar by its offset
        return EARLIEST if since.year == 1 else LATEST
    return min(max(since, EARLIEST), LATEST)


_PRICE, _VARIANT, _FIRST_VARIANT = "/admin/prices/{variant}", "$request.path.variant", "$response.body#/data/0/variant"
# The latest price set again as it reads: the same per-token price must be accepted.
_LATEST = {
    field: f"$response.body#/data/0/{field}" for field in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok")
}


@router.put(
    "/admin/prices/{variant}",
    openapi_extra=links(200, history=link("get", _PRICE, variant=_VARIANT)),
)
async def set_price(
    variant: VariantName, data: PriceCreate, session: SessionDep, table: PricesDep, identity: IdentityDep
) -> PricePublic:
    """A new version of the variant's price, charged from then on (every replica within the route cache TTL);
    spend already recorded keeps the version it was charged at."""
    identity.require_admin()
    await audit.stage(session, identity, "prices.set", Price, None)
    price = await prices.create(session, variant=variant, data=data)
    table.invalidate()
    return prices.to_public(price)


@router.get("/admin/prices", openapi_extra=links(200, history_of_first=link("get", _PRICE, variant=_FIRST_VARIANT)))
async def list_prices(session: SessionDep) -> PriceList:
    """Each variant's current price."""
    return PriceList(data=[prices.to_public(p) for p in await prices.current(session)])


@router.get(
    "/admin/prices/{variant}",
    openapi_extra=links(200, write_back=link("put", _PRICE, variant=_VARIANT, body=_LATEST, whole_body=True)),
)
async def price_history(variant: VariantName, session: SessionDep) -> PriceList:
    """Every version of the variant's price, newest first."""
    return PriceList(data=[prices.to_public(p) for p in await prices.history(session, variant=variant)])


@router.get("/admin/spend")
async def get_spend(
    session: SessionDep,
    settings: SettingsDep,
    identity: IdentityDep,
    since: Annotated[str | None, SinceQuery] = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    key: Annotated[str | None, Query(max_length=32)] = None,
    by: SpendBy | None = None,
) -> SpendReport:
    """Spend summed per hour in SQL: the hour holding ``since`` onwards, optionally one team's or key's, grouped."""
    team = identity.team_filter(team)
    return await service.report(
        session, since=parse_since(since), currency=settings.currency, team=team, key_id=key, by=by
    )
