"""What ``llmops up`` sets up once every service is ready: a gateway route to the bundled model."""

from urllib.parse import quote

import httpx

DEFAULT_ROUTE = "smollm2"


def base_model(inference_url: str) -> str:
    """The served name of the inference service's base model (the one entry of /v1/models without a parent)."""
    response = httpx.get(f"{inference_url}/v1/models", timeout=10, trust_env=False)
    response.raise_for_status()
    return next(m["id"] for m in response.json()["data"] if not m.get("parent"))


def ensure_default_route(*, gateway_url: str, inference_url: str, admin_token: str, route: str = DEFAULT_ROUTE) -> str:
    """Routes ``route`` to the inference service's base model unless a route of that name exists (an operator's
    own change survives restarts). Returns what happened, for the console."""
    with httpx.Client(
        base_url=gateway_url, headers={"authorization": f"Bearer {admin_token}"}, timeout=10, trust_env=False
    ) as admin:
        path = f"/admin/routes/{quote(route, safe='')}"
        existing = admin.get(path)
        if existing.status_code == 200:
            return f"Route {route} exists; left as it is."
        if existing.status_code != 404:
            existing.raise_for_status()
        model = base_model(inference_url)
        variant = {"name": "inference", "upstream": f"{inference_url}/v1", "model": model, "weight": 100}
        admin.put(path, json={"variants": [variant], "sticky": True, "fallbacks": []}).raise_for_status()
        return f"Route {route} -> inference model {model} created."
