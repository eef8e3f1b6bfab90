from typing import Annotated

from fastapi import APIRouter, Depends, Path

from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import link, links
from llmops_gateway.admin import audit
from llmops_gateway.deps import AuthenticatorDep, IdentityDep, SessionDep, get_identity
from llmops_gateway.teams import service
from llmops_gateway.teams.models import Team
from llmops_gateway.teams.schemas import TEAM_NAME_PATTERN, TeamCreate, TeamList, TeamPublic, TeamUpdate

# Roles: admins create and change teams (budgets included); a team-admin reads its own team, viewers all.
router = APIRouter(
    prefix="/admin/teams", tags=["admin: teams"], dependencies=[Depends(get_identity)], responses=ERROR_RESPONSES
)

TeamName = Annotated[str, Path(pattern=TEAM_NAME_PATTERN)]


_TEAM, _NAME = "/admin/teams/{name}", "$response.body#/name"


@router.post(
    "",
    status_code=201,
    openapi_extra=links(
        201,
        read=link("get", _TEAM, name=_NAME),
        update=link("patch", _TEAM, name=_NAME),
        add_key=link("post", "/admin/keys", body={"team": _NAME}),
    ),
)
async def create_team(data: TeamCreate, session: SessionDep, identity: IdentityDep) -> TeamPublic:
    identity.require_admin()
    await audit.stage(session, identity, "teams.create", Team, None)
    return await service.to_public(session, await service.create(session, data=data))


@router.get("")
async def list_teams(session: SessionDep, identity: IdentityDep) -> TeamList:
    only = identity.team_filter(None)
    teams = [t for t in await service.list_all(session) if only is None or t.name == only]
    return TeamList(data=[await service.to_public(session, t) for t in teams])


@router.get("/{name}")
async def get_team(name: TeamName, session: SessionDep, identity: IdentityDep) -> TeamPublic:
    identity.team_filter(name)
    return await service.to_public(session, await service.get(session, name=name))


@router.patch("/{name}")
async def update_team(
    name: TeamName, data: TeamUpdate, session: SessionDep, authenticator: AuthenticatorDep, identity: IdentityDep
) -> TeamPublic:
    """A budget change applies on every replica within the key cache TTL (keys carry their team's budget)."""
    identity.require_admin()
    await audit.stage(session, identity, "teams.update", Team, name)
    team = await service.update(session, name=name, data=data)
    authenticator.forget()
    return await service.to_public(session, team)
