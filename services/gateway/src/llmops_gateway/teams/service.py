"""Teams: create, list, get, update. A team's name is its id: keys name it, spend rows record it."""

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_gateway.keys.models import ApiKey
from llmops_gateway.money import Budget, BudgetNanos
from llmops_gateway.teams.models import Team
from llmops_gateway.teams.schemas import TeamCreate, TeamPublic, TeamUpdate


def budget_of(team: Team) -> BudgetNanos:
    return BudgetNanos(daily=team.budget_daily_nanos, monthly=team.budget_monthly_nanos)


def _set_budget(team: Team, budget: Budget) -> None:
    nanos = budget.nanos()
    team.budget_daily_nanos, team.budget_monthly_nanos = nanos.daily, nanos.monthly


async def to_public(session: AsyncSession, team: Team) -> TeamPublic:
    keys = await session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.team == team.name))
    return TeamPublic(
        name=team.name,
        description=team.description,
        budget=budget_of(team).public(),
        created_at=team.created_at,
        keys=keys or 0,
    )


async def create(session: AsyncSession, *, data: TeamCreate) -> Team:
    team = Team(name=data.name, description=data.description, created_at=utcnow())
    _set_budget(team, data.budget)
    session.add(team)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise APIError(409, f"team {data.name!r} already exists", code="team_exists") from None
    return team


async def require_named(session: AsyncSession, *, name: str | None) -> None:
    """The team a key or an identity names must exist: else 409 (create it, then send again). Not 404, which on
    ``PATCH /admin/keys/{key_id}`` reads as the key missing (schemathesis's stateful run called that out)."""
    if name is not None and await session.get(Team, name) is None:
        raise APIError(409, f"team {name!r} not found; create it first", code="team_not_found", param="team")


async def list_all(session: AsyncSession) -> list[Team]:
    return list((await session.scalars(select(Team).order_by(Team.name))).all())


async def get(session: AsyncSession, *, name: str) -> Team:
    team = await session.get(Team, name)
    if team is None:
        raise APIError(404, f"team {name!r} not found", code="team_not_found")
    return team


async def update(session: AsyncSession, *, name: str, data: TeamUpdate) -> Team:
    team = await get(session, name=name)
    fields = data.model_dump(exclude_unset=True)
    if "description" in fields:
        team.description = data.description
    if "budget" in fields:
        _set_budget(team, data.budget or Budget())
    await session.commit()
    return team
