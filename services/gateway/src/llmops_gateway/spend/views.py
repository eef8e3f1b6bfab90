import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from llmops_common.errors import ERROR_RESPONSES, APIError
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


def parse_since(text: str | None) -> datetime:
    """``30d``, ``12h``, ``2w`` back from now, or an ISO time with a timezone; default 30 days."""
    now = datetime.now(UTC)
    if not text:
        return now - timedelta(days=30)
    if match := re.fullmatch(r"(\d{1,6})([hdw])", text):
        return now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        raise APIError(
            422, "since: give a duration like 30d, 12h, 2w or an ISO time with a timezone", code="invalid_since"
        )
    return since


@router.put("/admin/prices/{variant}")
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


@router.get("/admin/prices")
async def list_prices(session: SessionDep) -> PriceList:
    """Each variant's current price."""
    return PriceList(data=[prices.to_public(p) for p in await prices.current(session)])


@router.get("/admin/prices/{variant}")
async def price_history(variant: VariantName, session: SessionDep) -> PriceList:
    """Every version of the variant's price, newest first."""
    return PriceList(data=[prices.to_public(p) for p in await prices.history(session, variant=variant)])


@router.get("/admin/spend")
async def get_spend(
    session: SessionDep,
    settings: SettingsDep,
    identity: IdentityDep,
    since: Annotated[str | None, Query(max_length=64)] = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    key: Annotated[str | None, Query(max_length=32)] = None,
    by: SpendBy | None = None,
) -> SpendReport:
    """Spend summed per hour in SQL: the hour holding ``since`` onwards, optionally one team's or key's, grouped."""
    team = identity.team_filter(team)
    return await service.report(
        session, since=parse_since(since), currency=settings.currency, team=team, key_id=key, by=by
    )
