"""Driving the console over HTTP as a browser would (cookies kept, forms posted with their hidden CSRF token), and
a smoke check of every page against a running platform (``tests/test_demo.py``, on what ``llmops up`` starts)."""

import re

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Every console page without a parameter; tests/test_console_http.py fails when the app has one not listed here.
CONSOLE_PAGES = (
    "/console/",
    "/console/playground",
    "/console/keys",
    "/console/spend",
    "/console/routes",
    "/console/feedback",
    "/console/experiments",
    "/console/training",
    "/console/collections",
)
# A whole key secret (``sk-llmops-`` and 43 characters); lists show its first 6 characters only.
KEY_SECRET = re.compile(r"sk-llmops-[A-Za-z0-9_-]{30,}")
# A record a list page links to (a request, an experiment): the smoke opens the first of each kind too.
DETAIL_LINK = re.compile(r'href="(/console/(?:feedback/requests|experiments)/[^"?#/]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def console_client(gateway_url: str) -> httpx.Client:
    return httpx.Client(base_url=gateway_url, timeout=30, follow_redirects=False)


def sign_in(client: httpx.Client, admin_token: str, *, next_path: str = "/console/") -> httpx.Response:
    form = client.get("/console/login")
    assert form.status_code == 200, form.text
    return client.post(
        "/console/login", data={"csrf_token": csrf_of(form.text), "admin_token": admin_token, "next": next_path}
    )


def post_form(client: httpx.Client, page: str, action: str, data: dict | None = None) -> httpx.Response:
    """Posts ``data`` to ``action`` with the CSRF token of ``page`` (where the form lives)."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={"csrf_token": token, **(data or {})})


def _page(client: httpx.Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text[-2000:])
    assert not KEY_SECRET.search(response.text), f"a key secret on {path}"
    return response.text


def smoke(gateway_url: str, admin_token: str) -> list[str]:
    """Signs in, creates a key (its secret is on the answering page, once), then opens every console page and the
    first request and experiment they link to: each answers 200 and holds no key secret. The paths opened."""
    with console_client(gateway_url) as client:
        assert sign_in(client, admin_token).status_code == 303
        created = post_form(client, "/console/keys", "/console/keys", {"name": "console-smoke"})
        assert created.status_code == 201 and KEY_SECRET.search(created.text), created.text[-2000:]
        details = {}
        for path in CONSOLE_PAGES:
            if link := DETAIL_LINK.search(_page(client, path)):
                details[link.group(1)] = path
        for path in details:
            _page(client, path)
    return [*CONSOLE_PAGES, *details]
