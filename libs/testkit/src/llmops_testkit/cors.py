"""CORS stays closed: no service answers a browser's cross-origin preflight or request with an
``access-control-allow-origin`` header (no service has a CORS setting; the console is served same-origin)."""

ORIGIN = "https://evil.example"


def cors_problems(client, paths: list[tuple[str, str]]) -> list[str]:
    """For each (method, path): a preflight and the request itself from another origin; what allowed the origin."""
    problems = []
    for method, path in paths:
        preflight = client.options(
            path,
            headers={
                "origin": ORIGIN,
                "access-control-request-method": method,
                "access-control-request-headers": "authorization, content-type",
            },
        )
        actual = client.request(method, path, headers={"origin": ORIGIN})
        for what, response in (("preflight", preflight), ("request", actual)):
            allowed = {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-allow-")}
            if allowed:
                problems.append(f"{what} {method} {path}: {allowed}")
    return problems
