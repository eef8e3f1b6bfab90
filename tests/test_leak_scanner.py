"""The scanner behind ``test_secrets_never_leak.py`` (``llmops_testkit.leaks``) finds a planted secret in every kind of
capture and every form it may take there, and does not flag what is meant to be seen."""

import base64
import secrets
from urllib.parse import quote

import orjson

from llmops_gateway.keys.service import DISPLAY_PREFIX_CHARS
from llmops_testkit.leaks import Capture, Secret, scan
from llmops_testkit.otlp import Span

KEY_SHOWN = DISPLAY_PREFIX_CHARS  # sk-llmops- and 6 characters: what key lists show


def test_the_scan_finds_a_planted_secret_in_every_kind_of_capture_and_form():
    key = Secret("key", "sk-llmops-" + secrets.token_urlsafe(32), shown=KEY_SHOWN)
    password = Secret("password", f"correct horse/battery+staple={secrets.token_hex(4)}!")
    value = key.value
    basic = base64.b64encode(f"client:{value}".encode()).decode()
    span = Span("svc", "POST /x", "server", "0" * 32, "1" * 16, None, events=[{"name": "exception", "attributes": {
        "exception.message": f"refused: Authorization: Basic {basic}"}}])  # fmt: skip
    planted = [
        Capture("log", "raw", orjson.dumps({"msg": "auth failed", "authorization": f"Bearer {value}"}).decode()),
        Capture("metrics", "cut", f'llmops_auth_failures_total{{key="{value[:30]}"}} 1.0'),  # 14 past the prefix
        Capture("span", "base64 in an event", repr(span)),
        Capture("http", "url-encoded", f'{{"error": {{"message": "no such user {quote(password.value)}"}}}}'),
        Capture("stored", "hex", f"request_log: ('r1', '{value.encode().hex()}')"),
        Capture("spool", "base64url", base64.urlsafe_b64encode(f"x{password.value}".encode()).decode()),
        Capture("redis", "raw, with spaces", f"b'session': b'{password.value}'"),
    ]
    found = scan(planted, [key, password])
    assert [(f.kind, f.where, f.secret) for f in found] == [
        ("log", "raw", "key"),
        ("metrics", "cut", "key"),
        ("span", "base64 in an event", "key"),
        ("http", "url-encoded", "password"),
        ("stored", "hex", "key"),
        ("spool", "base64url", "password"),
        ("redis", "raw, with spaces", "password"),
    ]
    assert [f.form for f in found][:3] == ["value", "value", "base64@1"]
    assert value not in repr(found) and password.value not in repr(found)  # a report does not leak it again
    # The displayed prefix is no leak, nor a secret where it is meant to be (the answer that creates a key).
    fine = [
        Capture("http", "list", f'{{"prefix": "{value[:KEY_SHOWN]}"}}'),
        Capture("http", "new", value, frozenset({"key"})),
    ]
    assert scan(fine, [key, password]) == []
