"""Experiments on real parts: a real gateway (the route split it serves), a real MLflow registry (aliases), the
feedback service's controller deciding on request records and ratings delivered as the gateway delivers them.

The statistics themselves are tested by simulation in test_experiment_stats.py; here the policy is set so that
a few dozen ratings decide, and the tests check what the platform does with a decision.
"""

import asyncio
import json
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from llmops_cli.main import app
from llmops_cli.procs import free_port
from llmops_common import sql
from llmops_feedback import db
from llmops_feedback.controller import run_once, take_lease
from llmops_feedback.experiments import service
from llmops_feedback.experiments.models import Experiment
from llmops_feedback.experiments.schemas import ExperimentCreate
from llmops_feedback.metrics import FeedbackMetrics
from llmops_feedback.platform import GatewayRoutes, Registry, Trainer
from llmops_feedback.settings import FeedbackSettings
from llmops_feedback.state import FeedbackState
from llmops_testkit.gateway import variant
from llmops_testkit.inference import wait_for

FAST = {"min_ratings_per_arm": 20, "steps": [0.1, 0.5], "max_duration_s": 3600, "min_exposures_for_guardrails": 2}


@pytest.fixture(scope="module")
def platform(make_feedback, new_database, gateway, mlflow_server):
    """A feedback service of its own whose controller acts on the shared gateway and MLflow every 0.3 s."""
    service = make_feedback(
        sql_url=new_database(),
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_MLFLOW_TRACKING_URI=mlflow_server.url,
        FEEDBACK_EXPERIMENT_INTERVAL_S="0.3",
    )
    return service, gateway, mlflow_server


@pytest.fixture
def fb(platform):
    with platform[0].admin() as client:
        yield client


def _registered(mlflow_server, aliases: dict[str, int]) -> str:
    """A registered model with as many versions as needed and ``aliases`` pointing at them; returns its name."""
    client, name = mlflow_server.client(), f"bot-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    for _ in range(max(aliases.values())):
        client.create_model_version(name, source="s3://llmops-tests/adapter")
    for alias, version in aliases.items():
        client.set_registered_model_alias(name, alias, str(version))
    return name


def _route(gateway, upstreams, champion_model: str, challenger_model: str) -> str:
    return gateway.put_route(
        variants=[
            variant("champion", upstreams["alpha"], model=champion_model),
            variant("challenger", upstreams["beta"], model=challenger_model, weight=0),
        ]
    )


def _weights(gateway, route: str) -> dict[str, float]:
    with gateway.admin() as admin:
        return {v["name"]: v["weight"] for v in admin.get(f"/admin/routes/{route}").json()["variants"]}


def _deliver(
    platform,
    route: str,
    arm: str,
    *,
    ups: int,
    downs: int,
    version: str | None,
    unrated: int = 0,
    users: list[str] | None = None,
    **fields,
) -> list[dict]:
    """Requests of one arm, delivered the gateway's way (ingest token), ``ups`` and ``downs`` of them rated by the
    admin; made by ``users`` in turn (as the gateway logs them, pseudonymised), or each by a user of its own."""
    service = platform[0]
    count = ups + downs + unrated
    users = users or [uuid.uuid4().hex[:16] for _ in range(count)]
    records = [
        {
            "request_id": uuid.uuid4().hex,
            "user_hash": users[i % len(users)],
            "key_id": "key_exp",
            "route": route,
            "variant": arm,
            "model": "m",
            "model_version": version,
            "status": 200,
            "started_at": time.time(),
            "finished_at": time.time(),
            **fields,
        }
        for i in range(count)
    ]
    with service.ingest() as ingest:
        assert ingest.post("/v1/requests", json={"records": records}).status_code == 200
    with service.admin() as admin:
        for i, record in enumerate(records[: ups + downs]):
            rating = "up" if i < ups else "down"
            assert (
                admin.post("/v1/feedback", json={"request_id": record["request_id"], "rating": rating}).status_code
                == 201
            )
    return records


def _status(fb: httpx.Client, experiment_id: str) -> str:
    return fb.get(f"/v1/experiments/{experiment_id}").json()["status"]


def test_bad_input_gets_clear_errors(platform, fb, upstreams, expect_error):
    _, gateway, mlflow_server = platform
    model = _registered(mlflow_server, {"champion": 1})
    route = _route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger"}
    expect_error(fb.post("/v1/experiments", json=body | {"route": "no-such-route"}), 404, "route_not_found")
    # the challenger alias is not in the registry
    expect_error(fb.post("/v1/experiments", json=body), 422)
    expect_error(fb.post("/v1/experiments", json=body | {"challenger": "nope"}), 422)
    expect_error(fb.post("/v1/experiments", json=body | {"policy": {"alpha": 2}}), 422, "invalid_policy")
    expect_error(fb.post("/v1/experiments", json=body | {"extra": 1}), 422)
    expect_error(fb.get("/v1/experiments/exp_nothing"), 404, "experiment_not_found")
    mlflow_server.client().set_registered_model_alias(model, "challenger", "1")
    created = fb.post("/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    expect_error(fb.post("/v1/experiments", json=body), 409, "experiment_open")  # one open experiment a route
    experiment_id = created.json()["id"]
    assert fb.post(f"/v1/experiments/{experiment_id}/stop").status_code == 200
    expect_error(fb.post(f"/v1/experiments/{experiment_id}/promote"), 409, "experiment_concluded")
    expect_error(fb.get("/v1/experiments", headers={"authorization": "Bearer wrong"}), 401)


def test_a_clear_win_is_promoted_by_moving_the_champion_alias(platform, fb, upstreams):
    _, gateway, mlflow_server = platform
    model = _registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = _route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    created = fb.post(
        "/v1/experiments", json={"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    )
    assert created.status_code == 201, created.text
    experiment = created.json()
    assert (experiment["champion_version"], experiment["challenger_version"], experiment["share"]) == ("1", "2", 0.1)
    assert _weights(gateway, route) == {"champion": 0.9, "challenger": 0.1}  # the first step, on the gateway at once
    # Traffic at the planned split; guardrails hold (nothing broke) and a step may be short here: the controller ramps.
    _deliver(platform, route, "champion", ups=0, downs=0, unrated=18, version="1")
    _deliver(platform, route, "challenger", ups=0, downs=0, unrated=2, version="2")
    wait_for(lambda: fb.get(f"/v1/experiments/{experiment['id']}").json()["share"] == 0.5, timeout_s=30, what="ramp")
    assert _weights(gateway, route) == {"champion": 0.5, "challenger": 0.5}

    _deliver(platform, route, "champion", ups=8, downs=32, version="1")
    _deliver(platform, route, "challenger", ups=36, downs=4, version="2")
    wait_for(lambda: _status(fb, experiment["id"]) == "promoted", timeout_s=30, what="the promotion")

    detail = fb.get(f"/v1/experiments/{experiment['id']}").json()
    promotion = detail["decisions"][-1]
    assert promotion["action"] == "promote" and promotion["actor"] == "controller" and promotion["applied"]
    assert promotion["evidence"]  # the numbers it saw
    assert detail["previous_champion_version"] == "1"
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "2"
    assert _weights(gateway, route) == {"champion": 1.0, "challenger": 0.0}  # the champion alias serves version 2

    # One command takes it back: the champion alias returns to the version it had.
    rolled = fb.post(f"/v1/experiments/{experiment['id']}/rollback")
    assert rolled.status_code == 200 and rolled.json()["status"] == "rolled_back"
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "1"


def test_two_prompt_versions_on_one_model_are_an_experiment_like_any_other(platform, fb, upstreams):
    """Both arms serve the same model; each variant sends its own prompt version (the gateway logs which)."""
    _, gateway, _ = platform
    route = _route(gateway, upstreams, "base-model", "base-model")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": {**FAST, "steps": [0.5]}}
    experiment = fb.post("/v1/experiments", json=body).json()
    assert (experiment["champion_version"], experiment["challenger_version"]) == (None, None)
    _deliver(platform, route, "champion", ups=8, downs=32, version=None, prompt_name="support", prompt_version="3")
    _deliver(platform, route, "challenger", ups=36, downs=4, version=None, prompt_name="support", prompt_version="4")
    wait_for(lambda: _status(fb, experiment["id"]) == "promoted", timeout_s=30, what="the promotion")
    arms = {a["arm"]: a for a in fb.get(f"/v1/experiments/{experiment['id']}").json()["readout"]["arms"]}
    assert arms["champion"]["prompts"] == {"support/3": 40} and arms["challenger"]["prompts"] == {"support/4": 40}
    assert _weights(gateway, route)["challenger"] == 1.0


def test_a_win_over_the_base_model_makes_the_adapter_the_champion(platform, fb, upstreams):
    """The challenger's model gets a champion alias, and the champion variant serves it: the next challenger trained
    into the same model is tested against it. Rollback restores what the champion variant served."""
    _, gateway, mlflow_server = platform
    model = _registered(mlflow_server, {"challenger": 1})
    route = _route(gateway, upstreams, "base-model", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST | {"steps": [0.5]}}
    experiment = fb.post("/v1/experiments", json=body).json()
    _deliver(platform, route, "champion", ups=6, downs=34, version=None)
    _deliver(platform, route, "challenger", ups=36, downs=4, version="1")
    wait_for(lambda: _status(fb, experiment["id"]) == "promoted", timeout_s=30, what="the promotion")
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "1"
    # Until the challenger's upstream serves <model>@champion (inference syncs the alias), the split stays: users
    # keep getting answers from both arms instead of a 404 from a name not loaded yet.
    time.sleep(1.0)  # a few controller passes
    promotion = fb.get(f"/v1/experiments/{experiment['id']}").json()["decisions"][-1]
    assert not promotion["applied"] and f"to serve {model}@champion" in promotion["apply_error"]
    assert _weights(gateway, route) == {"champion": 0.5, "challenger": 0.5}
    upstreams["beta"].behaviour.also_lists = (f"{model}@champion",)
    wait_for(lambda: _weights(gateway, route)["champion"] == 1.0, timeout_s=30, what="the champion repointed")
    with gateway.admin() as admin:
        variants = {v["name"]: v for v in admin.get(f"/admin/routes/{route}").json()["variants"]}
    assert variants["champion"]["model"] == f"{model}@champion" and variants["champion"]["weight"] == 1.0
    assert variants["champion"]["upstream"] == variants["challenger"]["upstream"]
    assert variants["challenger"]["weight"] == 0.0

    assert fb.post(f"/v1/experiments/{experiment['id']}/rollback").json()["status"] == "rolled_back"
    with gateway.admin() as admin:
        champion = {v["name"]: v for v in admin.get(f"/admin/routes/{route}").json()["variants"]}["champion"]
    assert champion["model"] == "base-model" and champion["upstream"].rstrip("/") == upstreams["alpha"].base_url


def test_a_clear_loss_is_rolled_back_and_the_version_rejected(platform, fb, upstreams):
    _, gateway, mlflow_server = platform
    model = _registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = _route(gateway, upstreams, "base-model", f"{model}@challenger")  # the base model as champion
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    experiment = fb.post("/v1/experiments", json=body).json()
    assert experiment["champion_version"] is None and experiment["challenger_version"] == "2"
    _deliver(platform, route, "champion", ups=34, downs=6, version=None)
    _deliver(platform, route, "challenger", ups=6, downs=34, version="2")
    wait_for(lambda: _status(fb, experiment["id"]) == "rolled_back", timeout_s=30, what="the rollback")
    assert _weights(gateway, route) == {"champion": 1.0, "challenger": 0.0}
    assert mlflow_server.client().get_model_version(model, "2").tags.get("llmops.rejected") == "true"
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "1"  # untouched


def test_a_low_judge_score_rolls_the_challenger_back_whatever_the_thumbs(platform, fb, upstreams):
    """The evaluation's scores of each arm's requests feed the policy's judge guardrail."""
    _, gateway, mlflow_server = platform
    model = _registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = _route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    policy = FAST | {"min_judge_score": 0.6, "judge_rubric": "helpfulness"}
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": policy}
    experiment = fb.post("/v1/experiments", json=body).json()
    scored = {
        0.9: _deliver(platform, route, "champion", ups=10, downs=10, version="1"),
        0.25: _deliver(platform, route, "challenger", ups=10, downs=10, version="2"),  # same thumbs
    }
    for score, records in scored.items():
        for record in records:
            body = {"request_id": record["request_id"], "rubric": "helpfulness", "scorer": "judge:t", "score": score}
            assert fb.post("/v1/evaluations/scores", json=body).status_code == 201
    wait_for(lambda: _status(fb, experiment["id"]) == "rolled_back", timeout_s=30, what="the rollback")
    detail = fb.get(f"/v1/experiments/{experiment['id']}").json()
    rollback = next(d for d in detail["decisions"] if d["action"] == "rollback")
    assert "judge score 0.250 is below 0.6" in rollback["reason"]
    assert rollback["evidence"]["guardrails"]["champion_judge_score"] == pytest.approx(0.9)


def test_judge_score_as_the_primary_metric_promotes_on_stored_scores(platform, fb, upstreams, expect_error):
    """Same thumbs on both arms; the challenger's answers score higher by the policy's rubric: it is promoted."""
    _, gateway, mlflow_server = platform
    model = _registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = _route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger"}
    error = expect_error(fb.post("/v1/experiments", json=body | {"policy": FAST | {"primary_metric": "judge_score"}}),
                         422, "invalid_policy")  # fmt: skip
    assert "judge_rubric must name the rubric" in error["message"]
    policy = FAST | {"primary_metric": "judge_score", "judge_rubric": "helpfulness"}
    experiment = fb.post("/v1/experiments", json=body | {"policy": policy}).json()
    scored = {
        (0.25, 0.5): _deliver(platform, route, "champion", ups=10, downs=15, version="1"),
        (0.75, 1.0): _deliver(platform, route, "challenger", ups=10, downs=15, version="2"),  # same thumbs
    }
    time.sleep(1.0)  # a few controller passes: the thumbs alone (a tie) decide nothing
    waiting = fb.get(f"/v1/experiments/{experiment['id']}").json()
    assert waiting["status"] == "running" and waiting["readout"]["primary_metric"] == "judge_score"
    assert waiting["readout"]["judge_rubric"] == "helpfulness"
    for scores, records in scored.items():
        for i, record in enumerate(records):
            body = {"request_id": record["request_id"], "rubric": "helpfulness", "scorer": "judge:t",
                    "score": scores[i % 2]}  # fmt: skip
            assert fb.post("/v1/evaluations/scores", json=body).status_code == 201
    wait_for(lambda: _status(fb, experiment["id"]) == "promoted", timeout_s=30, what="the promotion")
    detail = fb.get(f"/v1/experiments/{experiment['id']}").json()
    promotion = next(d for d in detail["decisions"] if d["action"] == "promote")
    assert "helpfulness judge-score difference +0.500" in promotion["reason"]
    shown = promotion["evidence"]["readout"]
    assert shown["metric"] == "judge_score" and shown["challenger"]["n"] == 25 and shown["difference"]["lower"] > 0
    arms = {a["arm"]: a for a in detail["readout"]["arms"]}
    assert arms["challenger"]["judge_scores"] == 25 and arms["challenger"]["judge_score"] == pytest.approx(
        0.87, abs=0.01
    )
    assert arms["champion"]["judge_score_low"] < arms["champion"]["judge_score"] < arms["champion"]["judge_score_high"]
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "2"


def test_a_version_the_offline_gate_blocked_gets_no_canary(platform, fb, upstreams, expect_error):
    _, gateway, mlflow_server = platform
    model = _registered(mlflow_server, {"champion": 1, "challenger": 2})
    mlflow_server.client().set_model_version_tag(model, "2", "llmops.offline_gate", "block")
    route = _route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    expect_error(fb.post("/v1/experiments", json=body), 409, "offline_gate_blocked")
    assert _weights(gateway, route) == {"champion": 1.0, "challenger": 0.0}  # no canary share was set
    mlflow_server.client().set_model_version_tag(model, "2", "llmops.offline_gate", "pass")
    assert fb.post("/v1/experiments", json=body).status_code == 201


def test_a_moved_alias_halts_the_experiment(platform, fb, upstreams):
    _, gateway, mlflow_server = platform
    model = _registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = _route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    experiment = fb.post("/v1/experiments", json=body).json()
    # Answers of another version while the alias stays: inference catching up. Kept out of the readout, no halt.
    _deliver(platform, route, "challenger", ups=2, downs=0, version="1")
    time.sleep(1.0)  # a few controller passes
    detail = fb.get(f"/v1/experiments/{experiment['id']}").json()
    assert detail["status"] == "running"
    assert detail["readout"]["arms"][1]["other_versions"] == 2 and detail["readout"]["arms"][1]["exposures"] == 0

    client = mlflow_server.client()  # someone moves the challenger alias to a new version mid-experiment
    client.create_model_version(model, source="s3://llmops-tests/adapter")
    client.set_registered_model_alias(model, "challenger", "3")
    wait_for(lambda: _status(fb, experiment["id"]) == "halted", timeout_s=30, what="the halt")
    detail = fb.get(f"/v1/experiments/{experiment['id']}").json()
    assert detail["decisions"][-1]["reason"] == "The challenger alias moved from version 2 to 3."
    assert _weights(gateway, route)["challenger"] == 0.0
    # still the route's open experiment until an admin stops it
    assert fb.post(f"/v1/experiments/{experiment['id']}/stop").json()["status"] == "stopped"


def test_the_sample_ratio_check_counts_users_not_requests(platform, fb, upstreams):
    """Sticky routing keeps a user on one arm: a few heavy users on one arm are not a broken split, while an arm
    that gets too few users is, however many requests they make."""
    _, gateway, mlflow_server = platform
    policy = FAST | {"steps": [0.5], "min_ratings_per_arm": 10_000, "min_exposures_for_srm": 100}
    model = _registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = _route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": policy}
    experiment = fb.post("/v1/experiments", json=body).json()
    # 60 users on each arm (fewer than the check needs until both arrived); the challenger's users ask four times
    # as often: 60 against 240 requests
    _deliver(platform, route, "champion", ups=0, downs=0, unrated=60, version="1")
    heavy = [uuid.uuid4().hex[:16] for _ in range(60)]
    _deliver(platform, route, "challenger", ups=0, downs=0, unrated=240, version="2", users=heavy)
    srm = fb.get(f"/v1/experiments/{experiment['id']}").json()["readout"]["next"]["evidence"]["srm"]
    assert (srm["unit"], srm["champion_units"], srm["challenger_units"]) == ("users", 60, 60)
    assert srm["checked"] and srm["p_value"] > 0.5
    time.sleep(1.0)  # a few controller passes
    assert _status(fb, experiment["id"]) == "running"

    # Now 200 more users reach the champion and none the challenger: assignment is broken.
    _deliver(platform, route, "champion", ups=0, downs=0, unrated=200, version="1")
    wait_for(lambda: _status(fb, experiment["id"]) == "halted", timeout_s=30, what="the halt")
    reason = fb.get(f"/v1/experiments/{experiment['id']}").json()["decisions"][-1]["reason"]
    assert reason.startswith("Sample-ratio mismatch: the challenger got 18.8% of 320 users"), reason
    fb.post(f"/v1/experiments/{experiment['id']}/stop")


def test_experiments_show_in_list_and_metrics(platform, fb, upstreams, scrape):
    service, gateway, mlflow_server = platform
    model = _registered(mlflow_server, {"champion": 1, "challenger": 1})
    route = _route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    experiment = fb.post("/v1/experiments", json=body).json()
    _deliver(platform, route, "champion", ups=3, downs=1, version="1")
    listed = fb.get("/v1/experiments", params={"route": route}).json()["data"]
    assert [e["id"] for e in listed] == [experiment["id"]]
    key = (
        "llmops_experiment_exposures",
        frozenset({"experiment": experiment["id"], "route": route, "arm": "champion"}.items()),
    )
    wait_for(lambda: scrape(service.url).get(key) == 4, timeout_s=10, what="the experiment's gauges")
    fb.post(f"/v1/experiments/{experiment['id']}/stop")


def test_one_controller_holds_the_lease_at_a_time(new_database):
    """Every replica runs the controller; only the lease holder acts, and an expired holder is replaced."""
    asyncio.run(_lease_rounds(new_database()))


async def _lease_rounds(url: str) -> None:
    engine = sql.make_engine(url)
    await db.migrate(engine)
    sessions = sql.make_sessionmaker(engine)

    async def take(holder: str, ttl_s: float = 1.0) -> bool:
        async with sessions() as session:
            return await take_lease(session, holder=holder, ttl_s=ttl_s)

    try:
        replicas = [f"replica-{i}" for i in range(5)]
        won = await asyncio.gather(*(take(r) for r in replicas))
        assert sum(won) == 1  # all at once: one wins
        holder = replicas[won.index(True)]
        assert await take(holder)  # the holder renews
        assert not await take("newcomer")
        await asyncio.sleep(1.1)  # the holder died: its lease expires
        assert await take("newcomer", ttl_s=30) and not await take(holder)
    finally:
        await engine.dispose()


def test_the_cli_lists_shows_and_decides_by_hand_with_the_evidence_recorded(platform, upstreams):
    """``llmops experiments`` and ``llmops retraining`` as an admin runs them (in-process, against the real service):
    a manual decision takes the controller's path, recorded with the readout it was taken on."""
    service, gateway, mlflow_server = platform
    env = {"LLMOPS_ADMIN_TOKEN": service.admin_token, "LLMOPS_FEEDBACK_URL": service.url, "COLUMNS": "200"}
    runner = CliRunner()

    def llmops(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    model = _registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = _route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    # No verdict and no ramp of the controller's own: every decision here is the admin's.
    hold = ("--steps", "0.1,0.5", "--min-ratings", "1000", "--min-step", "1h")
    created = llmops("experiments", "create", route, "--champion", "champion", "--challenger", "challenger", *hold)
    listed = json.loads(llmops("experiments", "list", "--route", route, "--json"))
    assert [(e["status"], e["share"]) for e in listed] == [("running", 0.1)] and listed[0]["id"] in created
    experiment_id = listed[0]["id"]
    _deliver(platform, route, "champion", ups=3, downs=1, version="1")
    _deliver(platform, route, "challenger", ups=4, downs=0, version="2")

    assert f"{experiment_id}: promoted" in llmops("experiments", "promote", experiment_id)
    shown = json.loads(llmops("experiments", "show", experiment_id, "--json"))
    promotion = shown["decisions"][-1]
    assert (shown["status"], promotion["action"], promotion["actor"], promotion["applied"]) == (
        "promoted", "promote", "admin", True
    )  # fmt: skip
    seen = promotion["evidence"]["readout"]["readout"]  # the numbers of the moment, and what the controller would do
    assert seen["metric"] == "thumbs_up" and (seen["champion"]["n"], seen["challenger"]["n"]) == (4, 4)
    assert (seen["champion"]["mean"], seen["challenger"]["mean"]) == (0.75, 1.0)  # 3 of 4 up against 4 of 4
    assert promotion["evidence"]["controller_would"] == "wait"
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "2"

    assert f"{experiment_id}: rolled_back" in llmops("experiments", "rollback", experiment_id)
    revert = json.loads(llmops("experiments", "show", experiment_id, "--json"))["decisions"][-1]
    assert (revert["action"], revert["actor"], revert["applied"]) == ("revert", "admin", True)
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "1"
    concluded = llmops("experiments", "stop", experiment_id, ok=False)  # the service's 409, said plainly
    assert f"experiment {experiment_id} is rolled_back" in concluded

    second = llmops("experiments", "create", route, "--champion", "champion", "--challenger", "challenger", *hold)
    second_id = json.loads(llmops("experiments", "list", "--route", route, "--status", "running", "--json"))[0]["id"]
    assert second_id in second and f"{second_id}: stopped" in llmops("experiments", "stop", second_id)
    stop = json.loads(llmops("experiments", "show", second_id, "--json"))["decisions"][-1]
    assert (stop["action"], stop["actor"], stop["share"], stop["applied"]) == ("stop", "admin", 0.0, True)
    assert stop["evidence"]["readout"]["readout"]["challenger"]["n"] == 0  # only its own requests count
    assert _weights(gateway, route) == {"champion": 1.0, "challenger": 0.0}

    # llmops retraining set|show: the policy as stored, and where it stands.
    llmops("retraining", "set", route, "--model", model, "--champion", "champion", "--min-examples", "500",
           "--cooldown", "30m", "--experiment", '{"steps": [0.05, 0.25]}')  # fmt: skip
    policy = json.loads(llmops("retraining", "show", route))
    assert (policy["model_name"], policy["min_examples"], policy["cooldown_s"], policy["failures"]) == (
        model, 500, 1800.0, 0
    )  # fmt: skip
    assert policy["experiment"] == {"steps": [0.05, 0.25]} and policy["enabled"]
    assert "no variant 'nope'" in llmops("retraining", "set", route, "--model", model, "--champion", "nope", ok=False)
    llmops("retraining", "delete", route)


def test_a_restarted_controller_applies_what_was_left_and_keeps_the_step_clock(new_database, gateway, upstreams):
    """The controller's state is the database: a process that recorded a ramp but could not apply it (its gateway
    unreachable) and then died leaves it to the next process, which applies it without deciding it again, and
    times the new step from when it was recorded, not from its own start."""
    route = _route(gateway, upstreams, "base-model", "base-model")  # no registry arms: only the split moves
    asyncio.run(_restart_rounds(new_database(), gateway, route))
    assert _weights(gateway, route) == {"champion": 0.1, "challenger": 0.9}


def _process(url: str, gateway_url: str, token: str):
    """What one feedback process holds for its controller: its own engine, clients and metrics."""
    engine = sql.make_engine(url)
    gateway_http = httpx.AsyncClient(base_url=gateway_url, headers={"authorization": f"Bearer {token}"}, timeout=5)
    return FeedbackState(
        settings=FeedbackSettings(database_url=url, experiment_interval_s=0.1),  # the lease lasts 0.3 s
        admin_token="unused",
        ingest_token="unused",
        engine=engine,
        sessions=sql.make_sessionmaker(engine),
        metrics=FeedbackMetrics(CollectorRegistry()),
        routes=GatewayRoutes(gateway_http),
        registry=Registry(None),
        trainer=Trainer(None),
    )


async def _restart_rounds(url: str, gateway, route: str) -> None:
    async def age_step(state, experiment_id: str, seconds: float) -> None:  # time passes: the step began earlier
        async with state.sessions() as session:
            experiment = await session.get(Experiment, experiment_id)
            experiment.step_started_at -= timedelta(seconds=seconds)
            await session.commit()

    async def stored(state, experiment_id: str) -> tuple[Experiment, list]:
        async with state.sessions() as session:
            experiment = await service.get(session, experiment_id=experiment_id)
            return experiment, await service.decisions(session, experiment_id=experiment_id)

    engine = sql.make_engine(url)
    await db.migrate(engine)
    await engine.dispose()
    first = _process(url, gateway.url, gateway.admin_token)
    policy = {"steps": [0.1, 0.5, 0.9], "min_step_duration_s": 3600, "min_exposures_for_guardrails": 0,
              "min_ratings_per_arm": 10_000}  # fmt: skip
    data = ExperimentCreate(route=route, champion="champion", challenger="challenger", policy=policy)
    async with first.sessions() as session:
        experiment_id = (
            await service.create(session, data=data, actor="admin", routes=first.routes, registry=first.registry)
        ).id
    assert await run_once(first, holder="first") == []  # the step has not run its hour
    await age_step(first, experiment_id, 3601)
    first.routes = GatewayRoutes(httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port()}"))  # cut off
    assert await run_once(first, holder="first") == [(experiment_id, "ramp")]
    experiment, decisions = await stored(first, experiment_id)
    ramp = decisions[-1]
    assert (experiment.share, ramp.action, ramp.applied) == (0.5, "ramp", False) and "unreachable" in ramp.apply_error
    assert _weights(gateway, route)["challenger"] == 0.1  # recorded, not applied: then the process dies
    await first.engine.dispose()

    await asyncio.sleep(0.35)  # its lease expires; a new process, with nothing in memory, takes over
    second = _process(url, gateway.url, gateway.admin_token)
    try:
        assert await run_once(second, holder="second") == []  # applied, not decided again
        assert _weights(gateway, route) == {"champion": 0.5, "challenger": 0.5}
        experiment, decisions = await stored(second, experiment_id)
        assert [d.action for d in decisions] == ["start", "ramp"] and decisions[-1].applied
        assert experiment.step_started_at == ramp.created_at  # the new step's clock started at the decision
        await age_step(second, experiment_id, 3599)  # the step's hour, counted from the recorded ramp, is not over
        assert await run_once(second, holder="second") == []
        await age_step(second, experiment_id, 2)  # now it is, though this process started a moment ago
        assert await run_once(second, holder="second") == [(experiment_id, "ramp")]
        experiment, decisions = await stored(second, experiment_id)
        assert (experiment.share, [d.action for d in decisions]) == (0.9, ["start", "ramp", "ramp"])
    finally:
        await second.engine.dispose()
