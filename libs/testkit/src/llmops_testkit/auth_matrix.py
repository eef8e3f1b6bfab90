"""Every route of a service refuses a request without its token, or with a wrong one: a matrix generated from the app.

The routes come from the app itself (its OpenAPI document, and the API routes it hides from the document), so a
route added tomorrow is checked without editing a list. Only ``PUBLIC_PATHS`` (probes, metrics, the API document)
may answer without a token; a service passes any other public path it documents.
"""

from collections.abc import Iterable

from fastapi import FastAPI
from fastapi.routing import APIRoute

# Liveness, readiness and metrics are scraped without credentials; the API document describes, it serves nothing.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)

_SAMPLE = {"integer": "1", "number": "1", "boolean": "true"}


def operations(app: FastAPI, *, public: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(method, concrete path) of every route that should need a token, path parameters filled with samples."""
    skip = PUBLIC_PATHS | set(public)
    found: dict[tuple[str, str], None] = {}
    for path, item in app.openapi().get("paths", {}).items():
        params = {p["name"]: p.get("schema", {}) for p in item.get("parameters", []) if p.get("in") == "path"}
        for method, operation in item.items():
            if method == "parameters" or path in skip:
                continue
            for param in operation.get("parameters", []):
                if param.get("in") == "path":
                    params[param["name"]] = param.get("schema", {})
            found[(method.upper(), _fill(path, params))] = None
    for route in app.routes:  # routes left out of the document must be closed too
        if isinstance(route, APIRoute) and not route.include_in_schema and route.path not in skip:
            for method in route.methods - {"HEAD"}:
                found[(method, _fill(route.path, {}))] = None
    return list(found)


def _fill(path: str, params: dict[str, dict]) -> str:
    for name, schema in params.items():
        path = path.replace("{" + name + "}", _SAMPLE.get(schema.get("type", "string"), "x"))
    # a parameter not in the document (hidden routes): a plain sample; ":path" converters take it as well
    while "{" in path:
        start = path.index("{")
        path = path[:start] + "x" + path[path.index("}", start) + 1 :]
    return path


def refusal_problem(response, method: str, path: str, what: str) -> str | None:
    """Why ``response`` is not a documented refusal (401/403 in the OpenAI error body), or None."""
    where = f"{method} {path} ({what})"
    if response.status_code not in (401, 403):
        return f"{where}: {response.status_code} {response.text[:200]}"
    try:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str) and "code" in error
    except (ValueError, KeyError, TypeError, AssertionError):
        return f"{where}: not the documented error body: {response.text[:200]}"
    if response.status_code == 401 and "bearer" not in response.headers.get("www-authenticate", "").lower():
        return f"{where}: 401 without WWW-Authenticate: Bearer"
    return None


def open_routes(client, app: FastAPI, *, public: Iterable[str] = (), wrong_tokens: Iterable[str] = ()) -> list[str]:
    """Every refusal that did not happen, for each operation: no Authorization header, a wrong bearer token (and
    each of ``wrong_tokens``, e.g. a token of another role), another scheme. ``client``: an httpx-like client."""
    attempts = {
        "no token": {},
        "wrong token": {"authorization": "Bearer not-the-token"},
        "basic scheme": {"authorization": "Basic YWRtaW46YWRtaW4="},
        **{f"wrong token #{i}": {"authorization": f"Bearer {t}"} for i, t in enumerate(wrong_tokens)},
    }
    problems = []
    for method, path in operations(app, public=public):
        for what, headers in attempts.items():
            # a JSON body where one is expected: refusal must come before reading it, whatever it holds
            response = client.request(
                method, path, headers={**headers, "content-type": "application/json"}, content=b"{}"
            )
            if (problem := refusal_problem(response, method, path, what)) is not None:
                problems.append(problem)
    return problems
