from fastapi import APIRouter, Depends

from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import RESPONSE_ID, link, links
from llmops_gateway.admin import audit
from llmops_gateway.deps import AuthenticatorDep, IdentityDep, SessionDep, get_identity
from llmops_gateway.keys import service
from llmops_gateway.keys.models import ApiKey
from llmops_gateway.keys.schemas import KeyCreate, KeyCreated, KeyList, KeyPublic, KeyUpdate

# Roles: viewers read; team-admins read and change their own team's keys; admins everything.
router = APIRouter(
    prefix="/admin/keys", tags=["admin: keys"], dependencies=[Depends(get_identity)], responses=ERROR_RESPONSES
)


_KEY = "/admin/keys/{key_id}"


@router.post(
    "",
    status_code=201,
    openapi_extra=links(
        201,
        read=link("get", _KEY, key_id=RESPONSE_ID),
        update=link("patch", _KEY, key_id=RESPONSE_ID),
        revoke=link("delete", _KEY, key_id=RESPONSE_ID),
    ),
)
async def create_key(
    data: KeyCreate, session: SessionDep, authenticator: AuthenticatorDep, identity: IdentityDep
) -> KeyCreated:
    if identity.team is not None and data.team is None:
        data = data.model_copy(update={"team": identity.team})  # a team-admin's keys are its team's
    identity.require_team(data.team)
    await audit.stage(session, identity, "keys.create", ApiKey, None)
    key, secret = await service.create(session, data=data, key_secret=authenticator.key_secret)
    return KeyCreated(**service.to_public(key).model_dump(), key=secret)


@router.get("")
async def list_keys(session: SessionDep, identity: IdentityDep) -> KeyList:
    team = identity.team_filter(None)
    keys = await service.list_all(session)
    return KeyList(data=[service.to_public(k) for k in keys if team is None or k.team == team])


@router.get("/{key_id}")
async def get_key(key_id: str, session: SessionDep, identity: IdentityDep) -> KeyPublic:
    key = await service.get(session, key_id=key_id)
    identity.team_filter(key.team)
    return service.to_public(key)


@router.patch("/{key_id}")
async def update_key(
    key_id: str, data: KeyUpdate, session: SessionDep, authenticator: AuthenticatorDep, identity: IdentityDep
) -> KeyPublic:
    identity.require_team((await service.get(session, key_id=key_id)).team)
    if "team" in data.model_fields_set:
        identity.require_team(data.team)  # a team-admin cannot give its keys away
    await audit.stage(session, identity, "keys.update", ApiKey, key_id)
    key = await service.update(session, key_id=key_id, data=data)
    authenticator.forget()
    return service.to_public(key)


@router.delete("/{key_id}")
async def revoke_key(
    key_id: str, session: SessionDep, authenticator: AuthenticatorDep, identity: IdentityDep
) -> KeyPublic:
    """Revokes the key (it stays listed, with ``revoked_at``). Every replica refuses it within the key cache TTL."""
    identity.require_team((await service.get(session, key_id=key_id)).team)
    await audit.stage(session, identity, "keys.revoke", ApiKey, key_id)
    key = await service.revoke(session, key_id=key_id)
    authenticator.forget()
    return service.to_public(key)
