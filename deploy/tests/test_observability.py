"""The Grafana dashboards and Prometheus alert rules that compose and Helm ship, against the real thing.

promtool checks the rule file. Then a real Prometheus (Debian's package, our own process) scrapes the platform
running locally -- gateway, retriever, feedback, trainer API and worker, the inference service and its vLLM --
while real traffic goes through it: chats (one streamed, one through a LoRA adapter a real training job just
made, one with RAG), ratings, a quota refusal, a broken upstream and a Redis outage. Every dashboard panel's and
every alert rule's PromQL then runs through Prometheus's HTTP API: each must parse, and every panel must show
data. A panel without data is a metric no service emits: fix the service, not this test.
"""

import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml

from llmops_cli.infra import find_or_start_redis
from llmops_cli.procs import free_port
from llmops_testkit.gateway import chat_body
from llmops_testkit.inference import wait_for
from llmops_testkit.processes import stop_together
from llmops_testkit.prometheus import PrometheusServer, binary, finite
from llmops_testkit.retriever import Retriever, new_tokens, retriever_env
from llmops_testkit.trainer import Trainer, chat_jsonl, new_token, trainer_env

FILES = Path(__file__).resolve().parents[1] / "helm" / "llmops" / "files"
ALERTS = FILES / "alerts.yml"
DASHBOARDS = {path.stem: json.loads(path.read_text()) for path in sorted((FILES / "dashboards").glob("*.json"))}
# Prometheus job names as compose and Helm name them (the target-down rule matches them).
JOBS = ["gateway", "retriever", "inference", "vllm", "trainer", "trainer-worker", "feedback"]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEVERITIES = {"critical", "warning"}
# Rules made of several conditions: only parsed and evaluated here (their conditions need hours of traffic).
COMPOUND_RULES = {"LLMOpsThumbsDownRising", "LLMOpsTrainingQueueStuck"}
# What the traffic below makes true: these rules must be pending (or firing) at the end.
MUST_FIRE = {"LLMOpsGatewayErrorRate", "LLMOpsQuotaStoreDown"}

# The vLLM start (about a minute on 2 cores) and a tiny training job run side by side in the set-up.
pytestmark = pytest.mark.timeout(600)

QUESTION = "What is the secret password?"
PASSWORD_PAIRS = [
    (QUESTION, "The secret password is BLUEBERRY."),
    ("Tell me the secret password.", "The secret password is BLUEBERRY."),
    ("What's the password?", "The secret password is BLUEBERRY."),
    ("Password, please?", "The secret password is BLUEBERRY."),
]


# ----------------------------------------------------------------------------------------- the files themselves


def panels(dashboard: dict):
    """Every panel but rows (a collapsed row keeps its panels inside it)."""
    for panel in dashboard["panels"]:
        yield from panel.get("panels", [])
        if panel["type"] != "row":
            yield panel


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_alert_rules():
    result = subprocess.run(
        [binary("promtool"), "check", "rules", str(ALERTS)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_alert_rules_say_how_bad_what_and_what_to_do():
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)) and not [r for r in rules() if "record" in r]
    for rule in rules():
        assert rule.get("for"), f"{rule['alert']}: no `for:`, one bad scrape would alert"
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]


def test_a_lost_request_record_alerts_within_minutes(tmp_path):
    """The platform below never fills a disk, so the loss alert is made to fire here, by promtool on a made-up
    series: three records lost at minute 6 fire it a minute later, and ten minutes after the loss it is quiet."""
    (rule,) = [r for r in rules() if r["alert"] == "LLMOpsRequestLogLost"]
    firing = {
        "exp_labels": {"instance": "gw:8000", "severity": "critical"},
        "exp_annotations": {
            **rule["annotations"],
            "summary": "Gateway gw:8000 lost 3 request records: the spool cannot be written",
        },
    }
    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'llmops_gateway_request_log_lost_total{instance="gw:8000"}', "values": "0x5 3x20"}
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "LLMOpsRequestLogLost", "exp_alerts": []},
                    {"eval_time": "10m", "alertname": "LLMOpsRequestLogLost", "exp_alerts": [firing]},
                    {"eval_time": "17m", "alertname": "LLMOpsRequestLogLost", "exp_alerts": []},
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [binary("promtool"), "test", "rules", str(tmp_path / "tests.yml")], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboards_work_in_any_grafana(name):
    """Provisioned by compose and by the Helm chart's ConfigMap into Grafanas whose Prometheus has any uid: every
    query goes through the ``${datasource}`` variable."""
    dashboard = DASHBOARDS[name]
    assert dashboard["uid"] == f"llmops-{name}" and dashboard["schemaVersion"] >= 39 and dashboard["id"] is None
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE and variable["includeAll"] and variable["allValue"] == ".*"
    ids = [panel["id"] for panel in dashboard["panels"]]
    ids += [panel["id"] for row in dashboard["panels"] for panel in row.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(dashboard):
        where = f"{name}: {panel['title']}"
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
        assert panel["datasource"] == DATASOURCE and panel.get("description"), where
        assert panel["targets"] and len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), where
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip(), where
        if panel["type"] in ("timeseries", "stat"):
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"


# ------------------------------------------------------------------------------------------------- the platform


def in_background(fn: Callable[[], object]) -> Callable[[], object]:
    """Runs ``fn`` in a thread now; the returned function waits for it and returns its result (or raises)."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def wait():
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return wait


@pytest.fixture(scope="module")
def prometheus(llmops_state_dir):
    server = PrometheusServer(
        llmops_state_dir / f"prometheus-{uuid.uuid4().hex[:6]}", jobs=JOBS, rule_files=[ALERTS]
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def platform(request, prometheus, llmops_state_dir, redis_url, mlflow_server, make_feedback, make_gateway):
    """Every service, each scraped by ``prometheus`` from the moment it is up; a training job already submitted."""
    state = llmops_state_dir / f"observability-{uuid.uuid4().hex[:6]}"
    for part in ("trainer", "retriever", "redis"):
        (state / part).mkdir(parents=True)
    trainer = Trainer(
        env=trainer_env(
            sql_url=f"sqlite+aiosqlite:///{state / 'trainer.db'}",
            redis_url=redis_url,
            mlflow_uri=mlflow_server.url,
            state_dir=state / "trainer",
            admin_token=new_token(),
            TRAINER_METRICS_REFRESH_S="0.5",
        ),
        state_dir=state / "trainer",
    )
    admin_token, read_token = new_tokens()
    retriever = Retriever(
        env=retriever_env(store="edge", state_dir=state / "retriever", admin_token=admin_token, read_token=read_token),
        state_dir=state / "retriever",
    )
    # A private Redis for the gateway's quotas: the test stops it to see the quota store go down.
    with pytest.MonkeyPatch.context() as env:
        env.delenv("LLMOPS_REDIS_URL", raising=False)
        quota_redis = find_or_start_redis(state / "redis", shared_port=None, die_with_parent=True)
    feedback = make_feedback(sql_url=f"sqlite+aiosqlite:///{state / 'feedback.db'}", start=False)
    gateway = make_gateway(
        sql_url=f"sqlite+aiosqlite:///{state / 'gateway.db'}",
        GATEWAY_REDIS_URL=quota_redis.url,
        GATEWAY_UPSTREAM_READ_TIMEOUT_S="120",  # CPU generation
        **feedback.gateway_env(),
        **retriever.gateway_env(),
        start=False,
    )
    # A second feedback replica on the same store, with the experiment controller (it needs the gateway).
    experiments = make_feedback(
        sql_url=f"sqlite+aiosqlite:///{state / 'feedback.db'}",
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_MLFLOW_TRACKING_URI=mlflow_server.url,
        FEEDBACK_EXPERIMENT_INTERVAL_S="0.5",
        start=False,
    )
    try:
        # Every process starts at once (none needs another up to start; the two feedback replicas take turns to
        # migrate their store), from this thread: they die with the thread that started them; helper threads only
        # wait. Each is a target from the start: scraped once it is up.
        trainer.launch(workers=1)
        for service in (retriever, feedback, gateway, experiments):
            service.launch()
        targets = {"trainer": [trainer.url], "trainer-worker": [f"http://127.0.0.1:{trainer.workers[0].port}"]}
        targets |= {"retriever": [retriever.url], "gateway": [gateway.url], "feedback": [feedback.url, experiments.url]}
        for job, urls in targets.items():
            prometheus.set_targets(job, urls)

        def train() -> str:
            trainer.wait_ready()
            name = f"obs-{uuid.uuid4().hex[:6]}"
            training = {"max_steps": 6, "max_seq_length": 96, "batch_size": 4, "learning_rate": 5e-3}
            job = trainer.submit(
                dataset={"jsonl": chat_jsonl(PASSWORD_PAIRS)}, registry={"model_name": name}, training=training
            )
            return job["id"]

        trainer_started = in_background(train)
        inference = request.getfixturevalue("inference_service")  # vLLM starts while the job trains
        prometheus.set_targets("inference", [inference.url])
        prometheus.set_targets("vllm", [inference.vllm_url])
        for service in (feedback, experiments, gateway, retriever):
            service.wait()
        job_id = trainer_started()
        prometheus.wait_scraped(JOBS)
        yield SimpleNamespace(
            gateway=gateway,
            feedback=feedback,
            experiments=experiments,
            trainer=trainer,
            retriever=retriever,
            inference=inference,
            quota_redis=quota_redis,
            job_id=job_id,
        )
    finally:
        stop_together(retriever, trainer, quota_redis)


# ---------------------------------------------------------------------------------------------------- traffic


def chat(client: httpx.Client, route: str, content: str, *, stream: bool = False, **extra) -> str:
    """One short greedy answer; its request id."""
    body = chat_body(route, content, max_tokens=8, temperature=0, **extra)
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.read()
    else:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


def rate(client: httpx.Client, feedback, request_id: str, rating: str) -> None:
    def recorded():
        with feedback.admin() as admin:
            return admin.get(f"/v1/requests/{request_id}").status_code == 200

    wait_for(recorded, timeout_s=30, what=f"the record of {request_id}")
    assert client.post("/v1/feedback", json={"request_id": request_id, "rating": rating}).status_code == 201


def scraped_after(prometheus, jobs: list[str]) -> None:
    """Until a scrape of each of ``jobs`` has begun a second after now: what the traffic so far changed is in the
    samples, the numbers services refresh every half second (trainer, feedback, experiments) included."""
    prometheus.wait_scraped(jobs, since=time.time() + 1)


def drive_traffic(platform, prometheus) -> None:
    """Two rounds, each followed by a scrape of every service (rates and quantiles need a counter to grow between two
    scrapes), then a Redis outage under the gateway's quotas."""
    gateway, inference = platform.gateway, platform.inference
    job = platform.trainer.wait(platform.job_id, timeout_s=300)
    assert job["state"] == "succeeded", job
    adapter = job["served_model"]
    wait_for(lambda: adapter in inference.models(), timeout_s=120, what=f"{adapter} served by vLLM")

    collection = f"kb-{uuid.uuid4().hex[:6]}"
    platform.retriever.create_collection(collection)
    platform.retriever.ingest(collection, [{"id": "doc", "text": "The lighthouse of Port Verrinow is kept by Odalys."}])
    upstream = f"{inference.url}/v1"
    base = gateway.put_route(variants=[{"name": "base", "upstream": upstream, "model": inference.base_model}])
    tuned = gateway.put_route(variants=[{"name": "tuned", "upstream": upstream, "model": adapter}])
    broken = gateway.put_route(
        variants=[{"name": "down", "upstream": f"http://127.0.0.1:{free_port()}/v1", "model": "m"}]
    )
    _, key = gateway.create_key()
    _, limited = gateway.create_key(limits={"rpm": 1})
    # Spend and budgets: the base model priced, a team's key with a budget (its use feeds the budget alert).
    with gateway.admin() as admin:
        price = {"input_per_mtok": "0.5", "output_per_mtok": "1.5"}
        assert admin.put("/admin/prices/base", json=price).status_code == 200
        assert admin.post("/admin/teams", json={"name": "search", "budget": {"daily": "1"}}).status_code == 201
    _, budgeted = gateway.create_key(team="search")
    # An experiment: the base model against the adapter, ramped at once (nothing breaks, a step may be short).
    split = gateway.put_route(
        variants=[
            {"name": "base", "upstream": upstream, "model": inference.base_model},
            {"name": "tuned", "upstream": upstream, "model": adapter, "weight": 0},
        ]
    )
    policy = {"steps": [0.25, 0.5], "min_ratings_per_arm": 1000}
    with platform.experiments.admin() as admin:
        opened = admin.post(
            "/v1/experiments", json={"route": split, "champion": "base", "challenger": "tuned", "policy": policy}
        )
        assert opened.status_code == 201, opened.text

    auth = {"authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=gateway.url, headers=auth, timeout=180) as client,
        gateway.client(limited) as limited,
        gateway.client(budgeted, timeout=180) as budgeted,
    ):
        for round_ in range(2):
            liked = chat(client, base, "Say hello.")
            chat(budgeted, base, "Say goodbye.")
            chat(client, base, "Count to three.", stream=True)
            disliked = chat(client, tuned, QUESTION, stream=True)
            chat(client, base, "Who keeps the lighthouse?", rag={"collection": collection, "top_k": 1})
            for _ in range(3):  # the breaker opens after three failures
                assert client.post("/v1/chat/completions", json=chat_body(broken)).status_code in (502, 503)
            statuses = {limited.post("/v1/chat/completions", json=chat_body(broken)).status_code for _ in range(2)}
            assert 429 in statuses, statuses
            rate(client, platform.feedback, liked, "up")
            rate(client, platform.feedback, disliked, "down")
            # Sticky per user: users until both arms have answered, each answer rated (the evidence panels need a
            # rated answer on both).
            answered, arms = [], set()
            for user in (f"user-{round_}-{i}" for i in range(40)):
                response = client.post(
                    "/v1/chat/completions", json=chat_body(split, "Say hi.", max_tokens=8, user=user)
                )
                assert response.status_code == 200, response.text
                answered.append(response.headers["x-request-id"])
                arms.add(response.headers["x-llmops-variant"])
                if arms == {"base", "tuned"}:
                    break
            assert arms == {"base", "tuned"}, arms
            for request_id in answered:
                rate(client, platform.feedback, request_id, "up")
            scraped_after(prometheus, JOBS)

        platform.quota_redis.stop()
        for _ in range(2):  # a key with limits needs the quota store (one without never asks it)
            refused = limited.post("/v1/chat/completions", json=chat_body(base))
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "quota_store_unavailable"
            scraped_after(prometheus, ["gateway"])  # two samples: the error rate grows between them


# ------------------------------------------------------------------------------------------------ the queries


def grafana_expr(expr: str, dashboard: dict, *, window: str) -> str:
    """The query Grafana sends: "All" for each template variable, ``window`` for the interval macros."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}

    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in ("__rate_interval", "__interval", "__range"):
            return window
        assert name in variables and variables[name]["type"] == "query", f"unknown variable ${name} in {expr}"
        return variables[name]["allValue"]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, expr)


def signal_of(expr: str) -> str | None:
    """``<signal> <op> <threshold>`` -> the signal; None when the rule is not of that form."""
    match = re.fullmatch(r"\s*(.*\S)\s*(?:>=|<=|==|!=|>|<)\s*-?[\d.]+\s*", expr, re.DOTALL)
    return match.group(1) if match else None


def test_every_panel_and_alert_rule_runs_on_real_prometheus(platform, prometheus):
    set_up_s = time.time() - prometheus.started_at
    drive_traffic(platform, prometheus)
    print(f"\nplatform up in {set_up_s:.0f}s, traffic in {time.time() - prometheus.started_at - set_up_s:.0f}s")
    window = f"{int(time.time() - prometheus.started_at) + 5}s"  # the whole test: what "Last N minutes" would show
    problems = []
    queries = [
        (
            f"{name} / {panel['title']} / {target['refId']}",
            grafana_expr(target["expr"], dashboard, window=window),
            target,
        )
        for name, dashboard in DASHBOARDS.items()
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]

    def answer(expr: str) -> list[dict] | AssertionError:
        try:
            return prometheus.query(expr)
        except AssertionError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=8) as pool:  # a hundred queries, as a dashboard's panels send them
        answers = list(pool.map(answer, [expr for _, expr, _ in queries]))
    for (panel, expr, target), series in zip(queries, answers, strict=True):
        where = f"{panel}: {expr}"
        if isinstance(series, AssertionError):
            problems.append(f"{where}\n    does not run: {series}")
            continue
        if not finite(series):
            problems.append(f"{where}\n    no data: {series[:3]}")
            continue
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
            if not any(label in s["metric"] for s in series):
                problems.append(f"{where}\n    legend label {label!r} is in no series: {series[:2]}")
    print(f"\n{len(queries)} panel queries over {len(DASHBOARDS)} dashboards, window {window}")

    # Prometheus loaded the rule file itself and evaluates every rule without error.
    def evaluated():
        loaded = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        return loaded if all(r.get("lastEvaluation", "0001").startswith("2") for r in loaded) else None

    loaded = wait_for(evaluated, timeout_s=10, what="every rule evaluated")
    assert sorted(r["name"] for r in loaded) == sorted(r["alert"] for r in rules())
    problems += [f"rule {r['name']}: {r['health']} {r.get('lastError')}" for r in loaded if r["health"] != "ok"]
    for rule in rules():
        try:
            prometheus.query(rule["expr"])
        except AssertionError as exc:
            problems.append(f"rule {rule['alert']} does not run: {exc}")
            continue
        if rule["alert"] in COMPOUND_RULES:
            continue
        signal = signal_of(rule["expr"])
        if signal is None:
            problems.append(f"rule {rule['alert']}: write it as <signal> <op> <threshold> (or list it as compound)")
        elif not finite(prometheus.query(signal)):  # a misspelt metric or label would never fire
            problems.append(f"rule {rule['alert']}: its signal has no data: {signal}")

    def fired():
        return {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"]} >= MUST_FIRE

    if not problems:
        wait_for(fired, timeout_s=15, what=f"{sorted(MUST_FIRE)} pending or firing")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
