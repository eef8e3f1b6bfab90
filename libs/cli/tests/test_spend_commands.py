"""``llmops teams``, ``llmops prices``, ``llmops spend`` and ``llmops keys --team`` as a user runs them (a process,
rich taking its width from ``COLUMNS``) against a real gateway (on PostgreSQL)."""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant

pytestmark = postgres_only  # the commands and their output, not the store


def llmops(gateway, *args: str, columns: int = 80, ok: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "COLUMNS": str(columns),
        "LLMOPS_GATEWAY_URL": gateway.url,
        "LLMOPS_ADMIN_TOKEN": gateway.admin_token,
    }
    env.pop("LINES", None)
    result = subprocess.run(
        [sys.executable, "-m", "llmops_cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def assert_fits(text: str, columns: int = 80) -> None:
    assert all(len(line) <= columns for line in text.splitlines()), text


@pytest.fixture
def team(gateway):
    name = f"team-{uuid.uuid4().hex[:6]}"
    llmops(gateway, "teams", "create", name, "--description", "search squad", "--budget-monthly", "250")
    return name


def test_teams_and_keys(gateway, team):
    created = json.loads(llmops(gateway, "keys", "create", "--name", "bot", "--team", team, "--json").stdout)
    listed = llmops(gateway, "teams", "list").stdout
    assert team in listed and "monthly=250" in listed
    assert_fits(listed)
    shown = json.loads(llmops(gateway, "teams", "show", team, "--json").stdout)
    assert shown["keys"] == 1 and shown["spend_30d"]["requests"] == 0
    keys = llmops(gateway, "keys", "list").stdout
    assert_fits(keys)
    llmops(gateway, "keys", "budget", created["id"], "--budget-daily", "1.5")
    llmops(gateway, "keys", "move", created["id"])
    with gateway.admin() as admin:
        key = admin.get(f"/admin/keys/{created['id']}").json()
    assert key["team"] is None and key["budget"] == {"daily": "1.5", "monthly": None}
    llmops(gateway, "teams", "budget", team, "--budget-daily", "1e1")  # sent as 10, the gateway's form (not 1E+1)
    assert json.loads(llmops(gateway, "teams", "show", team, "--json").stdout)["budget"]["daily"] == "10"


def test_unknown_team_is_one_clear_line(gateway):
    result = llmops(gateway, "keys", "create", "--name", "bot", "--team", "no-such-team", ok=False)
    assert result.returncode == 1 and "409" in result.stderr and "no-such-team" in result.stderr
    assert "Traceback" not in result.stderr


def test_prices_and_spend(gateway, upstreams, team):
    name = f"v-{uuid.uuid4().hex[:6]}"
    llmops(gateway, "prices", "set", name, "--gpu-hour", "2.10", "--tokens-per-s", "1500")
    prices = {p["variant"]: p for p in json.loads(llmops(gateway, "prices", "list", "--json").stdout)}
    assert prices[name]["input_per_mtok"] == prices[name]["output_per_mtok"] == "0.389"  # derived by the gateway
    assert prices[name]["derived_from"] == {"gpu_hour_cost": "2.1", "tokens_per_s": "1500"}
    for absurd in (("--gpu-hour", "2.10", "--tokens-per-s", "0"), ("--gpu-hour", "-1", "--tokens-per-s", "1500")):
        refused = llmops(gateway, "prices", "set", name, *absurd, ok=False)
        assert refused.returncode == 1 and "422" in refused.stderr and "Traceback" not in refused.stderr
    llmops(gateway, "prices", "set", name, "--input", "2", "--output", "10", "--cached-input", "1")
    history = llmops(gateway, "prices", "history", name).stdout
    newest, oldest = [line for line in history.splitlines() if name in line]  # newest first
    assert [c.strip() for c in newest.split("│")[1:5]] == [name, "2", "1", "10"]
    assert "0.389" in oldest and "as input" in oldest and "2.1/GPU-hour" in oldest
    assert_fits(history)
    route = gateway.put_route(variants=[variant(name, upstreams["alpha"])])
    key_id, key = json.loads(llmops(gateway, "keys", "create", "--name", "b", "--team", team, "--json").stdout).values()
    time.sleep(1.1)  # the new price reaches the gateway's price cache (GATEWAY_ROUTE_CACHE_TTL_S)
    with gateway.client(key) as client:
        for _ in range(2):
            assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
    deadline = time.monotonic() + 10
    while True:
        report = json.loads(llmops(gateway, "spend", "--team", team, "--by", "route", "--json").stdout)
        if report["total"]["requests"] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert report["groups"][0]["group"] == route and report["total"]["cost"] == str(2 * (11 * 2 + 5 * 10) / 1e6)
    table = llmops(gateway, "spend", "--key", key_id, "--by", "variant", "--since", "1h").stdout
    assert name in table and "0.000144" in table
    assert_fits(table)
    by_prompt = json.loads(llmops(gateway, "spend", "--key", key_id, "--by", "prompt_version", "--json").stdout)
    assert [(g["group"], g["requests"]) for g in by_prompt["groups"]] == [("-", 2)]  # the route names no prompt
    refused = llmops(gateway, "spend", "--by", "planet", ok=False)
    assert refused.returncode != 0 and "--by" in refused.stderr


def test_admins_and_audit(gateway, team):
    made = json.loads(
        llmops(gateway, "admins", "create", "lead", "--role", "team-admin", "--team", team, "--json").stdout
    )
    as_team_admin = type("As", (), {"url": gateway.url, "admin_token": made["token"]})()
    key = json.loads(llmops(as_team_admin, "keys", "create", "--name", "svc", "--json").stdout)
    listed = json.loads(llmops(as_team_admin, "keys", "list", "--json").stdout)
    assert {k["team"] for k in listed} == {team} and key["id"] in {k["id"] for k in listed}
    refused = llmops(as_team_admin, "teams", "create", "mine", ok=False)
    assert refused.returncode == 1 and "403" in refused.stderr
    identities = llmops(gateway, "admins", "list").stdout
    assert made["id"] in identities
    assert_fits(identities)
    table = llmops(gateway, "audit", "--actor", made["id"]).stdout
    assert "keys.create" in table and key["id"] in table
    assert_fits(table)
    entries = json.loads(llmops(gateway, "audit", "--target", key["id"], "--json").stdout)
    assert [e["action"] for e in entries] == ["keys.create"] and key["key"] not in json.dumps(entries)
    llmops(gateway, "admins", "revoke", made["id"])
    assert llmops(as_team_admin, "keys", "list", ok=False).returncode == 1
