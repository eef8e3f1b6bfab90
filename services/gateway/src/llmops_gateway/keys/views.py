from fastapi import APIRouter, Depends

from llmops_gateway.deps import AuthenticatorDep, SessionDep, require_admin
from llmops_gateway.keys import service
from llmops_gateway.keys.schemas import KeyCreate, KeyCreated, KeyList, KeyPublic, KeyUpdate

router = APIRouter(prefix="/admin/keys", tags=["admin: keys"], dependencies=[Depends(require_admin)])


@router.post("", status_code=201)
async def create_key(data: KeyCreate, session: SessionDep, authenticator: AuthenticatorDep) -> KeyCreated:
    key, secret = await service.create(session, data=data, key_secret=authenticator.key_secret)
    return KeyCreated(**service.to_public(key).model_dump(), key=secret)


@router.get("")
async def list_keys(session: SessionDep) -> KeyList:
    return KeyList(data=[service.to_public(k) for k in await service.list_all(session)])


@router.get("/{key_id}")
async def get_key(key_id: str, session: SessionDep) -> KeyPublic:
    return service.to_public(await service.get(session, key_id=key_id))


@router.patch("/{key_id}")
async def update_key(key_id: str, data: KeyUpdate, session: SessionDep, authenticator: AuthenticatorDep) -> KeyPublic:
    key = await service.update(session, key_id=key_id, data=data)
    authenticator.forget()
    return service.to_public(key)


@router.delete("/{key_id}")
async def revoke_key(key_id: str, session: SessionDep, authenticator: AuthenticatorDep) -> KeyPublic:
    """Revokes the key (it stays listed, with ``revoked_at``). Every replica refuses it within the key cache TTL."""
    key = await service.revoke(session, key_id=key_id)
    authenticator.forget()
    return service.to_public(key)
