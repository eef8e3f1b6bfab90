from typing import Annotated

from fastapi import APIRouter, Depends, Query

from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import RESPONSE_ID, link, links
from llmops_gateway.admin import audit, service
from llmops_gateway.admin.models import AdminIdentity
from llmops_gateway.admin.schemas import AuditList, AuditPublic, IdentityCreate, IdentityCreated, IdentityList
from llmops_gateway.deps import AuthenticatorDep, IdentityDep, SessionDep, get_identity, require_admin
from llmops_gateway.spend.views import SinceQuery, parse_since

# Identities: admins only. The audit log: admins and viewers (a team-admin's reads stop at its team).
router = APIRouter(
    tags=["admin: identities and audit"], dependencies=[Depends(get_identity)], responses=ERROR_RESPONSES
)


@router.post(
    "/admin/identities",
    status_code=201,
    dependencies=[Depends(require_admin)],
    openapi_extra=links(201, revoke=link("delete", "/admin/identities/{identity_id}", identity_id=RESPONSE_ID)),
)
async def create_identity(
    data: IdentityCreate, session: SessionDep, authenticator: AuthenticatorDep, identity: IdentityDep
) -> IdentityCreated:
    await audit.stage(session, identity, "identities.create", AdminIdentity, None)
    created, token = await service.create(session, data=data, key_secret=authenticator.key_secret)
    return IdentityCreated(**service.to_public(created).model_dump(), token=token)


@router.get("/admin/identities", dependencies=[Depends(require_admin)])
async def list_identities(session: SessionDep) -> IdentityList:
    return IdentityList(data=[service.to_public(i) for i in await service.list_all(session)])


@router.delete("/admin/identities/{identity_id}", dependencies=[Depends(require_admin)])
async def revoke_identity(identity_id: str, session: SessionDep, identity: IdentityDep):
    """Its token is refused from the next request on, on every replica."""
    await audit.stage(session, identity, "identities.revoke", AdminIdentity, identity_id)
    return service.to_public(await service.revoke(session, identity_id=identity_id))


@router.get("/admin/audit")
async def list_audit(
    session: SessionDep,
    identity: IdentityDep,
    since: Annotated[str | None, SinceQuery] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditList:
    """Admin actions, newest first."""
    if identity.team is not None:
        identity.require_admin()  # 403: a team-admin does not read the platform's audit log
    entries = await audit.query(
        session,
        since=parse_since(since) if since else None,
        actor=actor,
        action=action,
        target=target,
        limit=limit,
    )
    return AuditList(data=[AuditPublic.model_validate(e, from_attributes=True) for e in entries])
