"""``llmops up`` gives the evaluation workers a gateway key of their own for the judge: created at a real gateway
once, stored with the other generated secrets, kept while the gateway still accepts it, replaced once revoked."""

import stat
from dataclasses import replace

from llmops_cli.defaults import JUDGE_KEY_NAME, ensure_judge_key
from llmops_cli.services import DEFAULT_PORTS, PlatformContext, platform_services
from llmops_cli.state import load_secrets, secrets_path
from llmops_testkit.gateway import chat_body, variant


def test_the_judge_key_is_created_once_stored_privately_and_replaced_when_revoked(make_gateway, upstreams, tmp_path):
    gateway = make_gateway(sql_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    before = load_secrets(tmp_path)
    assert before.judge_key is None

    def ensure():
        return ensure_judge_key(gateway_url=gateway.url, admin_token=gateway.admin_token, state=tmp_path,
                                secrets=load_secrets(tmp_path))  # fmt: skip

    first, message = ensure()
    assert first.judge_key.startswith("sk-llmops-") and first.judge_key not in message
    assert "created" in message and first.judge_key_id in message
    stored = load_secrets(tmp_path)
    assert (stored.judge_key, stored.judge_key_id) == (first.judge_key, first.judge_key_id)
    assert (stored.admin_token, stored.key_secret, stored.ingest_token) == (
        before.admin_token, before.key_secret, before.ingest_token,
    )  # fmt: skip
    assert stat.S_IMODE(secrets_path(tmp_path).stat().st_mode) == 0o600
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    with gateway.client(first.judge_key) as client:  # a key the gateway accepts for any route
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
    with gateway.admin() as admin:
        assert admin.get(f"/admin/keys/{first.judge_key_id}").json()["name"] == JUDGE_KEY_NAME

    kept, message = ensure()
    assert kept.judge_key == first.judge_key and "kept" in message

    with gateway.admin() as admin:
        admin.delete(f"/admin/keys/{first.judge_key_id}").raise_for_status()
    renewed, message = ensure()
    assert renewed.judge_key_id != first.judge_key_id and "created" in message
    assert load_secrets(tmp_path).judge_key == renewed.judge_key


def test_the_stored_judge_key_reaches_the_evaluation_worker_and_the_environment_wins(monkeypatch, tmp_path):
    secrets = load_secrets(tmp_path)

    def worker_env(judge_key: str | None) -> dict:
        ctx = PlatformContext(state=tmp_path, secrets=replace(secrets, judge_key=judge_key),
                              redis_url="redis://127.0.0.1:6379/0", ports=dict(DEFAULT_PORTS))  # fmt: skip
        return next(s for s in platform_services(ctx) if s.name == "evaluation_worker").env

    monkeypatch.delenv("FEEDBACK_EVAL_JUDGE_KEY", raising=False)
    assert "FEEDBACK_EVAL_JUDGE_KEY" not in worker_env(None)
    assert worker_env("sk-llmops-stored")["FEEDBACK_EVAL_JUDGE_KEY"] == "sk-llmops-stored"
    monkeypatch.setenv("FEEDBACK_EVAL_JUDGE_KEY", "sk-llmops-operator")
    assert worker_env("sk-llmops-stored")["FEEDBACK_EVAL_JUDGE_KEY"] == "sk-llmops-operator"
