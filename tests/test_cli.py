"""The llmops CLI against real services: keys through the gateway, quality and datasets from feedback."""

import json
import os
import subprocess
import sys
import time

import orjson

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant

pytestmark = postgres_only  # the CLI against live services, not their stores


def llmops(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "llmops_cli.main", *args],
        check=False,  # the caller decides: some tests expect a failure
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not check or result.returncode == 0, result.stderr
    return result


def test_keys_through_the_real_gateway(gateway, upstreams, tmp_path):
    env = {"LLMOPS_GATEWAY_URL": gateway.url, "LLMOPS_ADMIN_TOKEN": gateway.admin_token, "LLMOPS_HOME": str(tmp_path)}
    created = json.loads(llmops("keys", "create", "--name", "cli", "--rpm", "2", "--json", env=env).stdout)
    assert set(created) == {"id", "key"} and created["key"].startswith("sk-llmops-")
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    with gateway.client(created["key"]) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
    listed = llmops("keys", "list", "--json", env=env).stdout
    assert created["id"] in listed and created["key"] not in listed
    llmops("keys", "revoke", created["id"], env=env)
    with gateway.client(created["key"]) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 401
    wrong = llmops("keys", "list", env={**env, "LLMOPS_ADMIN_TOKEN": "nope"}, check=False)
    assert wrong.returncode == 1 and "401" in wrong.stderr and "Traceback" not in wrong.stderr


def test_feedback_summary_export_and_rate(feedback, tmp_path):
    env = {"LLMOPS_FEEDBACK_URL": feedback.url, "LLMOPS_ADMIN_TOKEN": feedback.admin_token}
    route, now = f"cli-{time.time_ns()}", time.time()
    records = [
        {
            "request_id": f"{route}-{i}",
            "key_id": "k",
            "route": route,
            "variant": "v",
            "status": 200,
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "answer": f"a{i}",
            "latency_ms": 10.0,
            "started_at": now,
            "finished_at": now,
        }
        for i in range(3)
    ]
    with feedback.ingest() as ingest:
        assert ingest.post("/v1/requests", json={"records": records}).status_code == 200
    llmops("feedback", "rate", f"{route}-0", "up", env=env)
    llmops("feedback", "rate", f"{route}-1", "down", "--correction", "better", env=env)
    table = llmops("feedback", "summary", "--route", route, env=env).stdout
    assert route in table and "50%" in table
    summary = json.loads(llmops("feedback", "summary", "--route", route, "--json", env=env).stdout)
    assert [(q["requests"], q["up"], q["down"]) for q in summary["variants"]] == [(3, 1, 1)]
    out = tmp_path / "sft.jsonl"
    llmops("feedback", "export", "sft", "--route", route, "--out", str(out), env=env)
    answers = [orjson.loads(line)["messages"][-1]["content"] for line in out.read_bytes().splitlines()]
    assert answers == ["a0", "better"]
    unknown = llmops("feedback", "rate", "nope", "up", env=env, check=False)
    assert unknown.returncode == 1 and "404" in unknown.stderr
