"""Rotating the key-hashing secret without downtime: with the old secret listed in GATEWAY_KEY_SECRETS_PREVIOUS,
keys and admin identity tokens stored under it keep working and are stored again under the new secret when
used, after which the old secret can go (SECURITY.md describes the rollout)."""

import secrets
import uuid

import httpx

from llmops_testkit.gateway import chat_body, variant


def test_keys_and_admin_tokens_survive_a_key_secret_rotation(make_gateway, llmops_state_dir, upstreams):
    sql_url = f"sqlite+aiosqlite:///{llmops_state_dir / f'rotation-{uuid.uuid4().hex[:6]}.db'}"
    admin, old, new = (secrets.token_urlsafe(24) for _ in range(3))
    common = {"sql_url": sql_url, "GATEWAY_ADMIN_TOKEN": admin}
    before = make_gateway(**common, GATEWAY_KEY_SECRET=old)
    route = before.put_route(variants=[variant("a", upstreams["alpha"])])
    _, key = before.create_key()
    with before.admin() as client:
        identity = client.post("/admin/identities", json={"name": "ops", "role": "admin"}).json()["token"]
    used_later = before.create_key()[1]  # not used while the old secret is accepted
    before.stop()

    def works(gateway, secret: str) -> tuple[int, int]:
        with gateway.client(secret) as client:
            answer = client.post("/v1/chat/completions", json=chat_body(route)).status_code
        listing = httpx.get(f"{gateway.url}/admin/keys", headers={"authorization": f"Bearer {identity}"})
        return answer, listing.status_code

    during = make_gateway(**common, GATEWAY_KEY_SECRET=new, GATEWAY_KEY_SECRETS_PREVIOUS=old)
    assert works(during, key) == (200, 200)
    assert works(during, key) == (200, 200)  # from the cache, and stored again under the new secret
    during.stop()

    after = make_gateway(**common, GATEWAY_KEY_SECRET=new)  # the old secret dropped
    assert works(after, key) == (200, 200)
    # A key never used during the rotation is still stored under the old secret, which the new one cannot match:
    # why the old secret stays accepted for as long as keys may go unused (SECURITY.md).
    with after.client(used_later) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 401
