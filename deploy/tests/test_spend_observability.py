"""The spend and budget panels of the gateway dashboard and the LLMOpsBudgetNearlySpent rule, against a real
Prometheus scraping a real gateway while a team's budgeted key spends: each panel query has data, and the rule
goes pending or firing once the team's budget passes GATEWAY_BUDGET_ALERT_SHARE (here 0.5). The whole-platform
scenario (test_observability.py) runs the same panels among all others; this one needs no model and no trainer.
"""

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.inference import wait_for
from llmops_testkit.prometheus import PrometheusServer, finite

FILES = Path(__file__).resolve().parents[1] / "helm/llmops/files"
ALERTS = FILES / "alerts.yml"
PANELS = ("Spend per hour by team and route", "Budget used")


@pytest.fixture(scope="module")
def prometheus(llmops_state_dir):
    server = PrometheusServer(
        llmops_state_dir / f"prometheus-{uuid.uuid4().hex[:6]}", jobs=["gateway"], rule_files=[ALERTS]
    ).start()
    yield server
    server.stop()


def test_spend_panels_have_data_and_the_budget_alert_fires(prometheus, make_gateway, upstreams, llmops_state_dir):
    gw = make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'gw-{uuid.uuid4().hex[:6]}.db'}",
        GATEWAY_BUDGET_ALERT_SHARE="0.5",
        GATEWAY_ROUTE_CACHE_TTL_S="0.2",
    )
    prometheus.set_targets("gateway", [gw.url])
    with gw.admin() as admin:
        assert admin.put("/admin/prices/paid", json={"input_per_mtok": "0", "output_per_mtok": "1"}).is_success
        assert admin.post("/admin/teams", json={"name": "search", "budget": {"daily": "0.00001"}}).is_success
    time.sleep(0.3)  # the price reaches the gateway's price cache
    route = gw.put_route(variants=[variant("paid", upstreams["alpha"])])
    _, key = gw.create_key(team="search")
    prometheus.wait_scraped(["gateway"])
    with gw.client(key) as client:
        for _ in range(2):  # each request is half the team's budget (5 tokens at 1 per million): past 0.5 at once
            assert client.post("/v1/chat/completions", json=chat_body(route, max_tokens=5)).status_code == 200
            # A scrape after each: a rate needs the counter to grow between two of them.
            prometheus.wait_scraped(["gateway"], since=time.time())

    dashboard = json.loads((FILES / "dashboards/gateway.json").read_text())
    panels = {p["title"]: p for p in dashboard["panels"] if p.get("title") in PANELS}
    assert set(panels) == set(PANELS)
    for title, panel in panels.items():
        for target in panel["targets"]:
            expr = re.sub(r"\$__rate_interval|\$__interval|\$__range", "30s", target["expr"])
            series = prometheus.query(expr)
            assert finite(series), f"{title}: no data for {expr}: {series}"
            assert any(s["metric"].get("team") == "search" or s["metric"].get("owner") == "search" for s in series)

    rule = next(
        r
        for g in yaml.safe_load(ALERTS.read_text())["groups"]
        for r in g["rules"]
        if r["alert"] == "LLMOpsBudgetNearlySpent"
    )
    assert prometheus.query(rule["expr"]), "the rule's expression selects nothing past the share"

    def alerted():
        alerts = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "LLMOpsBudgetNearlySpent"] or None

    alert = wait_for(alerted, timeout_s=15, what="LLMOpsBudgetNearlySpent pending or firing")[0]
    assert (alert["labels"]["scope"], alert["labels"]["owner"], alert["labels"]["period"]) == ("team", "search", "day")
