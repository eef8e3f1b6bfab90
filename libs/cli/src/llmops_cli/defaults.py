"""What ``llmops up`` sets up once every service is ready: a gateway route to the bundled model, and the gateway key
the evaluation workers ask their judge with."""

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

from llmops_cli.state import Secrets, store_judge_key
from llmops_common.contracts.serving import INFERENCE_TOKEN_ENV

DEFAULT_ROUTE = "smollm2"
JUDGE_KEY_NAME = "llmops-evaluation-judge"


def base_model(inference_url: str, *, serving_token: str) -> str:
    """The served name of the inference service's base model (the one entry of /v1/models without a parent)."""
    headers = {"authorization": f"Bearer {serving_token}"}
    response = httpx.get(f"{inference_url}/v1/models", headers=headers, timeout=10, trust_env=False)
    response.raise_for_status()
    return next(m["id"] for m in response.json()["data"] if not m.get("parent"))


def inference_variant(name: str, *, inference_url: str, model: str, **fields) -> dict:
    """A route variant served by the inference service: the gateway sends it the serving token it holds."""
    return {
        "name": name,
        "upstream": f"{inference_url}/v1",
        "model": model,
        "api_key_env": INFERENCE_TOKEN_ENV,
        **fields,
    }


def _send_serving_token(spec: dict, *, inference_url: str) -> bool:
    """Makes the route's variants (and inline fallbacks) served by this inference service send its serving token;
    False when every one did already."""
    candidates = spec["variants"] + [f for f in spec.get("fallbacks", []) if isinstance(f, dict)]
    tokenless = [
        v for v in candidates if v["upstream"].rstrip("/") == f"{inference_url}/v1" and not v.get("api_key_env")
    ]
    for variant in tokenless:
        variant["api_key_env"] = INFERENCE_TOKEN_ENV
    return bool(tokenless)


def ensure_default_route(
    *, gateway_url: str, inference_url: str, admin_token: str, serving_token: str, route: str = DEFAULT_ROUTE
) -> str:
    """Routes ``route`` to the inference service's base model unless a route of that name exists (an operator's
    own change survives restarts, except that its variants served by this inference service without the serving
    token, as routes were before the token, get it). Returns what happened, for the console."""
    with httpx.Client(
        base_url=gateway_url, headers={"authorization": f"Bearer {admin_token}"}, timeout=10, trust_env=False
    ) as admin:
        path = f"/admin/routes/{quote(route, safe='')}"
        existing = admin.get(path)
        if existing.status_code == 200:
            spec = existing.json()
            if not _send_serving_token(spec, inference_url=inference_url):
                return f"Route {route} exists; left as it is."
            body = {k: v for k, v in spec.items() if k not in ("name", "updated_at")}
            admin.put(path, json=body).raise_for_status()
            return f"Route {route} exists; its inference variants now send the serving token."
        if existing.status_code != 404:
            existing.raise_for_status()
        model = base_model(inference_url, serving_token=serving_token)
        variant = inference_variant("inference", inference_url=inference_url, model=model, weight=100)
        admin.put(path, json={"variants": [variant], "sticky": True, "fallbacks": []}).raise_for_status()
        return f"Route {route} -> inference model {model} created."


def _usable(key: dict) -> bool:
    expires_at = key.get("expires_at")
    return key.get("revoked_at") is None and (
        expires_at is None or datetime.fromisoformat(expires_at) > datetime.now(UTC)
    )


def ensure_judge_key(*, gateway_url: str, admin_token: str, state: Path, secrets: Secrets) -> tuple[Secrets, str]:
    """The evaluation workers' gateway key: the stored one while the gateway has it and it is usable, else a new one
    (no route restriction: the workers also ask the routes an offline gate compares), stored in the secrets file.
    Returns the secrets and what happened, for the console; the key itself is never printed."""
    with httpx.Client(
        base_url=gateway_url, headers={"authorization": f"Bearer {admin_token}"}, timeout=10, trust_env=False
    ) as admin:
        if secrets.judge_key and secrets.judge_key_id:
            found = admin.get(f"/admin/keys/{quote(secrets.judge_key_id, safe='')}")
            if found.status_code == 200 and _usable(found.json()):
                return secrets, f"Judge key {secrets.judge_key_id} kept."
            if found.status_code not in (200, 404):
                found.raise_for_status()
        created = admin.post("/admin/keys", json={"name": JUDGE_KEY_NAME})
        created.raise_for_status()
        key = created.json()
    stored = store_judge_key(state, key_id=key["id"], key=key["key"])
    return stored, f"Judge key {key['id']} created for the evaluation workers (in {secrets.path})."
