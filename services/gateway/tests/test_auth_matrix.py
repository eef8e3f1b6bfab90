"""Every gateway route but the few listed open ones refuses a request without credentials, with wrong ones and with
another scheme: the OpenAI surface, the batch workers' routes and the admin API with 401/403 in the OpenAI error
body, the console with its redirect to the sign-in page.

The routes come from the gateway's own app (built in-process, never started, only to list them), so a route added
tomorrow is checked without editing this file; the requests go to one real gateway process. A route that answers
without credentials must be listed in ``OPEN``, on purpose.
"""

import secrets
import uuid

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount, Route

from llmops_gateway.app import create_app
from llmops_gateway.keys.service import KEY_PREFIX
from llmops_gateway.settings import GatewaySettings
from llmops_testkit.auth_matrix import PUBLIC_PATHS, open_routes, operations, refusal_problem

# What answers without credentials besides the probes, metrics and API document (PUBLIC_PATHS): the console's
# sign-in page and form, its slash-less address (a redirect to /console/), and its stylesheets and scripts.
OPEN = {("GET", "/console/login"), ("POST", "/console/login"), ("GET", "/console"), ("MOUNT", "/console/static")}
CONSOLE = "/console/"
# A key of the right shape that was never issued.
UNKNOWN_KEY = KEY_PREFIX + secrets.token_urlsafe(32)


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of everything the app serves; a mount as ("MOUNT", its path)."""
    found = set()
    for route in app.routes:
        if isinstance(route, Mount):
            found.add(("MOUNT", route.path))
        elif isinstance(route, Route):  # FastAPI's routes and the completion endpoints alike
            found |= {(method, route.path) for method in route.methods - {"HEAD"}}
    return found


def open_paths() -> set[str]:
    return {path for _, path in OPEN}


def console_paths(app: FastAPI) -> set[str]:
    return {path for _, path in served_routes(app) if path.startswith(CONSOLE)} - open_paths()


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(GatewaySettings(admin_token="a" * 32, key_secret="k" * 32, dev_mode=False))


@pytest.fixture(scope="module")
def gateway(make_gateway, llmops_state_dir):
    """One gateway process, with a batch-worker token (so its internal routes have a token to refuse)."""
    return make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'auth-matrix-{uuid.uuid4().hex[:6]}.db'}",
        GATEWAY_BATCH_TOKEN=secrets.token_urlsafe(24),
    )


@pytest.fixture(scope="module")
def client(gateway):
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


def test_every_route_is_checked_or_listed_open(app, gateway):
    """The matrix below covers all the app serves but ``OPEN`` and ``PUBLIC_PATHS``, and the process serves the
    same app as the one the routes are listed from."""
    served = served_routes(app)
    assert OPEN <= served, f"listed open but not served any more: {OPEN - served}"
    unchecked = {(m, p) for m, p in served if p not in PUBLIC_PATHS} - OPEN
    assert len(operations(app, public=open_paths())) == len(unchecked), "a route the matrix does not reach"
    document = httpx.get(f"{gateway.url}/openapi.json", timeout=10).json()
    assert set(document["paths"]) == set(app.openapi()["paths"])


def test_the_api_refuses_missing_wrong_and_misplaced_credentials(app, gateway, client):
    """No token, a wrong one, Basic, an unknown key of the right shape; then real credentials in the wrong place:
    an API key on the admin API and the batch workers' routes, the admin token as an API key."""
    api = operations(app, public=open_paths() | console_paths(app))
    assert {path.split("/")[1] for _, path in api} == {"v1", "admin", "internal"}
    assert len(api) > 30  # the matrix found the API, not an empty document
    assert open_routes(client, app, public=open_paths() | console_paths(app), wrong_tokens=[UNKNOWN_KEY]) == []

    _, key = gateway.create_key()
    problems = []
    for method, path in api:
        credentials = {"an API key": key} if path.startswith(("/admin/", "/internal/")) else {}
        credentials["the admin token"] = gateway.admin_token if path.startswith(("/v1/", "/internal/")) else None
        for what, token in credentials.items():
            if token is None:
                continue
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
            response = client.request(method, path, headers=headers, content=b"{}")
            if (problem := refusal_problem(response, method, path, what)) is not None:
                problems.append(problem)
    assert problems == []


def test_the_console_sends_everyone_without_a_session_to_sign_in(app, gateway, client):
    """No session cookie, a forged one, and the admin token as a bearer header (the console takes its session
    cookie only): every page and form redirects to the sign-in page, none answers."""
    pages = [op for op in operations(app, public=open_paths()) if op[1].startswith(CONSOLE)]
    assert len(pages) > 15
    attempts = {
        "no session": {},
        "forged session": {"cookie": f"llmops_console={secrets.token_urlsafe(32)}"},
        "bearer admin token": {"authorization": f"Bearer {gateway.admin_token}"},
    }
    problems = []
    for method, path in pages:
        for what, headers in attempts.items():
            client.cookies.clear()  # only what ``headers`` carries
            form = {**headers, "content-type": "application/x-www-form-urlencoded"}
            response = client.request(method, path, headers=form, content=b"csrf_token=x")
            location = response.headers.get("location", "")
            if response.status_code != 303 or not location.startswith("/console/login"):
                problems.append(f"{method} {path} ({what}): {response.status_code} {location or response.text[:120]}")
    assert problems == []
