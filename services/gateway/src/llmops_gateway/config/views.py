"""``/admin/config``: the gateway's part of the platform's declarative configuration (``llmops apply|diff|export``)."""

from fastapi import APIRouter, Depends

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_gateway.admin.auth import Identity
from llmops_gateway.admin.schemas import Role
from llmops_gateway.config import service
from llmops_gateway.config.schemas import ConfigApply, ConfigExport, Plan
from llmops_gateway.deps import AuthenticatorDep, IdentityDep, PromptsDep, RoutesDep, SessionDep, get_identity

router = APIRouter(
    prefix="/admin/config", tags=["admin: config"], dependencies=[Depends(get_identity)], responses=ERROR_RESPONSES
)


def _platform_wide(identity: Identity) -> None:
    """The whole platform's state: admins and viewers; a team-admin reads its own team's keys only."""
    if identity.role is Role.team_admin:
        raise APIError(403, "a team-admin sees its own team only", code="forbidden_role")


@router.get("")
async def export_config(session: SessionDep, identity: IdentityDep) -> ConfigExport:
    """Every route and the managed fields of every live key with a name of its own: re-applied, it changes nothing."""
    _platform_wide(identity)
    return await service.export(session)


@router.post("/apply")
async def apply_config(
    data: ConfigApply,
    session: SessionDep,
    routes: RoutesDep,
    authenticator: AuthenticatorDep,
    identity: IdentityDep,
    prompts: PromptsDep,
) -> Plan:
    """Makes routes and keys match ``data`` in one transaction (all or nothing), or with ``dry_run`` only answers
    what would change. Each route change is a revision; each change is in the audit log. Every registered prompt
    a route names must resolve (422 naming it), a dry run included."""
    _platform_wide(identity)
    if not data.dry_run:
        identity.require_admin()
    for name, spec in data.routes.items():
        await prompts.check_route(spec, at=f"routes.{name}.")
    changes = await service.apply(session, data, identity=identity)
    applied = bool(changes) and not data.dry_run
    if applied:
        routes.invalidate()
        authenticator.forget()
    return Plan(changes=changes, applied=applied)
