"""The admin commands against a stand-in admin API that really listens on loopback (the gateway's own
tests cover the real API)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from llmops_cli.main import app

TOKEN = "test-admin-token-0123456789"
KEY = {
    "id": "key_1",
    "key": "sk-llmops-secret",
    "name": "demo",
    "prefix": "sk-llmops-sec",
    "limits": {"rpm": 60, "tpm": None, "tpd": None},
    "allowed_routes": None,
    "created_at": "2025-01-01T00:00:00Z",
    "expires_at": None,
    "revoked_at": None,
}


class FakeAdmin(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, dict | None]]] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def _reply(self, status: int, body: dict | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        FakeAdmin.requests.append((self.command, self.path, body))
        if self.headers.get("authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"error": {"message": "invalid admin token", "type": "authentication_error"}})
        if (self.command, self.path) == ("POST", "/admin/keys"):
            return self._reply(201, KEY)
        if (self.command, self.path) == ("GET", "/admin/keys"):
            return self._reply(200, {"data": [{k: v for k, v in KEY.items() if k != "key"}]})
        if (self.command, self.path) == ("PATCH", "/admin/keys/key_1"):
            return self._reply(200, {**KEY, **body})
        if (self.command, self.path) == ("DELETE", "/admin/keys/key_1"):
            return self._reply(204, None)
        if self.command == "PUT" and self.path.startswith("/admin/routes/"):
            return self._reply(200, {"name": self.path.rsplit("/", 1)[1], **body})
        if (self.command, self.path) == ("GET", "/admin/routes"):
            return self._reply(200, {"data": []})
        return self._reply(404, {"error": {"message": f"no such thing: {self.path}", "type": "not_found_error"}})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@pytest.fixture
def admin_url(monkeypatch, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAdmin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeAdmin.requests = []
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("LLMOPS_GATEWAY_URL", url)
    monkeypatch.setenv("LLMOPS_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    yield url
    server.shutdown()
    server.server_close()


runner = CliRunner()


def test_keys_create_json_prints_only_id_and_key(admin_url):
    result = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--name",
            "demo",
            "--rpm",
            "60",
            "--expires-in",
            "12h",
            "--route",
            "chat",
            "--route",
            "rag",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"id": "key_1", "key": "sk-llmops-secret"}
    assert FakeAdmin.requests == [
        (
            "POST",
            "/admin/keys",
            {
                "name": "demo",
                "limits": {"rpm": 60, "tpm": None, "tpd": None},
                "expires_in_s": 43200,
                "allowed_routes": ["chat", "rag"],
            },
        )
    ]


def test_keys_create_without_json_shows_the_secret_once_on_its_own_line(admin_url):
    result = runner.invoke(app, ["keys", "create", "--name", "demo"])
    assert result.exit_code == 0, result.output
    assert "sk-llmops-secret" in result.stdout.splitlines()
    assert "only time" in result.stdout
    assert FakeAdmin.requests[0][2]["expires_in_s"] is None and FakeAdmin.requests[0][2]["allowed_routes"] is None


def test_keys_collections_are_granted_at_creation_and_replaced_later(admin_url):
    created = runner.invoke(app, ["keys", "create", "--name", "demo", "--collection", "kb", "--collection", "faq"])
    assert created.exit_code == 0, created.output
    assert FakeAdmin.requests[-1][2]["allowed_collections"] == ["kb", "faq"]
    for args, grant, shown in (
        (["--collection", "kb"], ["kb"], "collections kb."),
        (["--none"], [], "collections none."),
        ([], None, "collections any."),  # back to whatever its routes allow
    ):
        result = runner.invoke(app, ["keys", "collections", "key_1", *args])
        assert result.exit_code == 0, result.output
        assert FakeAdmin.requests[-1] == ("PATCH", "/admin/keys/key_1", {"allowed_collections": grant})
        assert shown in result.stdout
    both = runner.invoke(app, ["keys", "collections", "key_1", "--none", "--collection", "kb"])
    assert both.exit_code == 2 and FakeAdmin.requests[-1][0] == "PATCH" and len(FakeAdmin.requests) == 4


def test_keys_list_and_revoke(admin_url):
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert "key_1" in listed.stdout and "rpm=60" in listed.stdout and "any" in listed.stdout  # collections: any
    as_json = runner.invoke(app, ["keys", "list", "--json"])
    assert json.loads(as_json.stdout)[0]["id"] == "key_1"
    revoked = runner.invoke(app, ["keys", "revoke", "key_1"])
    assert revoked.exit_code == 0, revoked.output
    assert FakeAdmin.requests[-1][:2] == ("DELETE", "/admin/keys/key_1")


def test_routes_put_sends_the_route_spec(admin_url, tmp_path):
    result = runner.invoke(
        app,
        [
            "routes",
            "put",
            "chat",
            "--variant",
            "name=a,upstream=http://127.0.0.1:9000/v1,model=m,weight=90",
            "--variant",
            "name=b,upstream=http://127.0.0.1:9001/v1,model=m2,weight=10,api_key_env=B_KEY",
            "--no-sticky",
            "--fallback",
            "b",
        ],
    )
    assert result.exit_code == 0, result.output
    assert FakeAdmin.requests[-1] == (
        "PUT",
        "/admin/routes/chat",
        {
            "variants": [
                {"name": "a", "upstream": "http://127.0.0.1:9000/v1", "model": "m", "weight": 90},
                {
                    "name": "b",
                    "upstream": "http://127.0.0.1:9001/v1",
                    "model": "m2",
                    "weight": 10,
                    "api_key_env": "B_KEY",
                },
            ],
            "sticky": False,
            "fallbacks": ["b"],
        },
    )
    spec = tmp_path / "route.json"
    spec.write_text(json.dumps({"variants": [{"name": "a", "upstream": "u", "model": "m", "weight": 1}]}))
    from_file = runner.invoke(app, ["routes", "put", "other", "--file", str(spec)])
    assert from_file.exit_code == 0, from_file.output
    assert FakeAdmin.requests[-1][2] == {
        "variants": [{"name": "a", "upstream": "u", "model": "m", "weight": 1}],
        "sticky": True,
        "fallbacks": [],
    }


def test_api_errors_print_the_message_and_exit_non_zero_without_traceback(admin_url, monkeypatch):
    monkeypatch.setenv("LLMOPS_ADMIN_TOKEN", "wrong-token")
    result = runner.invoke(app, ["keys", "list"])
    assert result.exit_code == 1
    assert "401: invalid admin token" in result.output
    assert "Traceback" not in result.output


def test_unreachable_gateway_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_ADMIN_TOKEN", TOKEN)
    result = runner.invoke(app, ["keys", "list", "--gateway-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the gateway" in result.output and "Traceback" not in result.output


def test_missing_admin_token_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("LLMOPS_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "empty"))
    result = runner.invoke(app, ["keys", "list", "--gateway-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "no admin token" in result.output
    assert not (tmp_path / "empty").exists()  # reading must not create state


def test_status_reports_unreachable_and_exits_1(monkeypatch):
    monkeypatch.setenv("LLMOPS_GATEWAY_URL", "http://127.0.0.1:9")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "unreachable" in result.output
