"""Spend reports: sums over the hourly spend rows, whole or grouped."""

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_gateway.money import from_nanos
from llmops_gateway.spend.models import SpendRow
from llmops_gateway.spend.schemas import SpendBy, SpendGroup, SpendReport

_COLUMNS = {
    SpendBy.route: SpendRow.route,
    SpendBy.variant: SpendRow.variant,
    SpendBy.key: SpendRow.key_id,
    SpendBy.team: SpendRow.team,
    SpendBy.prompt_version: SpendRow.prompt_version,
}
_SUMS = (
    func.coalesce(func.sum(SpendRow.requests), 0),
    func.coalesce(func.sum(SpendRow.prompt_tokens), 0),
    func.coalesce(func.sum(SpendRow.cached_tokens), 0),
    func.coalesce(func.sum(SpendRow.completion_tokens), 0),
    func.coalesce(func.sum(SpendRow.cost_nanos), 0),
)


def _group(name: str, sums) -> SpendGroup:
    requests, prompt, cached, completion, cost = (int(v) for v in sums)
    return SpendGroup(
        group=name,
        requests=requests,
        prompt_tokens=prompt,
        cached_tokens=cached,
        completion_tokens=completion,
        cost=from_nanos(cost),
    )


def _hour_of(moment: datetime) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp() // 3600) * 3600, UTC)


def _where(since: datetime, *, team: str | None, key_id: str | None) -> list:
    where = [SpendRow.hour >= since]
    if team is not None:
        where.append(SpendRow.team == team)
    if key_id is not None:
        where.append(SpendRow.key_id == key_id)
    return where


async def hourly(
    session: AsyncSession, *, since: datetime, team: str | None = None, key_id: str | None = None
) -> list[tuple[datetime, int, Decimal]]:
    """(hour, requests, cost) for each hour with spend, oldest first, from the hour that holds ``since`` on."""
    where = _where(_hour_of(since), team=team, key_id=key_id)
    statement = (
        select(SpendRow.hour, func.sum(SpendRow.requests), func.sum(SpendRow.cost_nanos))
        .where(*where)
        .group_by(SpendRow.hour)
        .order_by(SpendRow.hour)
    )
    rows = (await session.execute(statement)).all()
    return [(_utc(hour), int(requests), from_nanos(int(cost))) for hour, requests, cost in rows]


def _utc(hour: datetime) -> datetime:
    return hour if hour.tzinfo else hour.replace(tzinfo=UTC)  # SQLite hands times back without their zone


async def report(
    session: AsyncSession,
    *,
    since: datetime,
    currency: str,
    team: str | None = None,
    key_id: str | None = None,
    by: SpendBy | None = None,
) -> SpendReport:
    """Spend from the hour that holds ``since`` on; ``team``/``key_id`` narrow it down."""
    since = _hour_of(since)
    where = _where(since, team=team, key_id=key_id)
    total = (await session.execute(select(*_SUMS).where(*where))).one()
    groups = []
    if by is not None:
        column = _COLUMNS[by]
        rows = await session.execute(
            select(column, *_SUMS).where(*where).group_by(column).order_by(func.sum(SpendRow.cost_nanos).desc())
        )
        groups = [_group(row[0] or "-", row[1:]) for row in rows]
    return SpendReport(currency=currency, since=since, by=by, total=_group("total", total), groups=groups)
