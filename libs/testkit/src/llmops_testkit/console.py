"""Driving the console over HTTP as a browser would (cookies kept, forms posted with their hidden CSRF token)."""

import re

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


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
