"""Experiments on real parts: a real gateway (the route split it serves), a real MLflow registry (aliases), the
feedback service's controller deciding on request records and ratings delivered as the gateway delivers them.

The statistics themselves are tested by simulation in test_experiment_stats.py; here the policy is set so that
a few dozen ratings decide, and the tests check what the platform does with a decision.
"""

import re
import time
import uuid

import httpx
import pytest

from llmops_common.contracts.serving import INFERENCE_TOKEN_ENV
from llmops_testkit.backends import postgres_only
from llmops_testkit.experiments import deliver, experiment_route, registered, route_weights
from llmops_testkit.inference import wait_for

pytestmark = postgres_only  # what the platform does with the controller's decisions: the store is not the subject

FAST = {"min_ratings_per_arm": 20, "steps": [0.1, 0.5], "max_duration_s": 3600, "min_exposures_for_guardrails": 2}


def _status(fb: httpx.Client, experiment_id: str) -> str:
    return fb.get(f"/v1/experiments/{experiment_id}").json()["status"]


def test_bad_input_gets_clear_errors(platform, fb, upstreams, expect_error):
    _, gateway, mlflow_server = platform
    model = registered(mlflow_server, {"champion": 1})
    route = experiment_route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
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
    model = registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = experiment_route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    created = fb.post(
        "/v1/experiments", json={"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    )
    assert created.status_code == 201, created.text
    experiment = created.json()
    assert (experiment["champion_version"], experiment["challenger_version"], experiment["share"]) == ("1", "2", 0.1)
    assert route_weights(gateway, route) == {
        "champion": 0.9,
        "challenger": 0.1,
    }  # the first step, on the gateway at once
    # Traffic at the planned split; guardrails hold (nothing broke) and a step may be short here: the controller ramps.
    deliver(platform, route, "champion", ups=0, downs=0, unrated=18, version="1")
    deliver(platform, route, "challenger", ups=0, downs=0, unrated=2, version="2")
    wait_for(lambda: fb.get(f"/v1/experiments/{experiment['id']}").json()["share"] == 0.5, timeout_s=30, what="ramp")
    assert route_weights(gateway, route) == {"champion": 0.5, "challenger": 0.5}

    deliver(platform, route, "champion", ups=8, downs=32, version="1")
    deliver(platform, route, "challenger", ups=36, downs=4, version="2")
    wait_for(lambda: _status(fb, experiment["id"]) == "promoted", timeout_s=30, what="the promotion")

    detail = fb.get(f"/v1/experiments/{experiment['id']}").json()
    promotion = detail["decisions"][-1]
    assert promotion["action"] == "promote" and promotion["actor"] == "controller" and promotion["applied"]
    assert promotion["evidence"]  # the numbers it saw
    assert detail["previous_champion_version"] == "1"
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "2"
    assert route_weights(gateway, route) == {"champion": 1.0, "challenger": 0.0}  # the champion alias serves version 2

    # One command takes it back: the champion alias returns to the version it had.
    rolled = fb.post(f"/v1/experiments/{experiment['id']}/rollback")
    assert rolled.status_code == 200 and rolled.json()["status"] == "rolled_back"
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "1"


def test_two_prompt_versions_on_one_model_are_an_experiment_like_any_other(platform, fb, upstreams):
    """Both arms serve the same model; each variant sends its own prompt version (the gateway logs which)."""
    _, gateway, _ = platform
    route = experiment_route(gateway, upstreams, "base-model", "base-model")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": {**FAST, "steps": [0.5]}}
    experiment = fb.post("/v1/experiments", json=body).json()
    assert (experiment["champion_version"], experiment["challenger_version"]) == (None, None)
    deliver(platform, route, "champion", ups=8, downs=32, version=None, prompt_name="support", prompt_version="3")
    deliver(platform, route, "challenger", ups=36, downs=4, version=None, prompt_name="support", prompt_version="4")
    wait_for(lambda: _status(fb, experiment["id"]) == "promoted", timeout_s=30, what="the promotion")
    arms = {a["arm"]: a for a in fb.get(f"/v1/experiments/{experiment['id']}").json()["readout"]["arms"]}
    assert arms["champion"]["prompts"] == {"support/3": 40} and arms["challenger"]["prompts"] == {"support/4": 40}
    assert route_weights(gateway, route)["challenger"] == 1.0


def test_a_win_over_the_base_model_makes_the_adapter_the_champion(platform, fb, upstreams, serving_token):
    """The challenger's model gets a champion alias, and the champion variant serves it where the challenger was
    served, with the key sent there (a closed inference service's serving token): the next challenger trained into
    the same model is tested against it. Rollback restores what the champion variant served."""
    _, gateway, mlflow_server = platform
    model = registered(mlflow_server, {"challenger": 1})
    route = experiment_route(
        gateway, upstreams, "base-model", f"{model}@challenger", challenger_key=INFERENCE_TOKEN_ENV
    )
    upstreams["beta"].behaviour.api_key = serving_token  # the challenger's upstream is a closed inference service
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST | {"steps": [0.5]}}
    experiment = fb.post("/v1/experiments", json=body).json()
    deliver(platform, route, "champion", ups=6, downs=34, version=None)
    deliver(platform, route, "challenger", ups=36, downs=4, version="1")
    wait_for(lambda: _status(fb, experiment["id"]) == "promoted", timeout_s=30, what="the promotion")
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "1"
    # Until the challenger's upstream serves <model>@champion (inference syncs the alias), the split stays: users
    # keep getting answers from both arms instead of a 404 from a name not loaded yet.
    time.sleep(1.0)  # a few controller passes
    promotion = fb.get(f"/v1/experiments/{experiment['id']}").json()["decisions"][-1]
    assert not promotion["applied"] and f"to serve {model}@champion" in promotion["apply_error"]
    assert route_weights(gateway, route) == {"champion": 0.5, "challenger": 0.5}
    upstreams["beta"].behaviour.also_lists = (f"{model}@champion",)
    wait_for(lambda: route_weights(gateway, route)["champion"] == 1.0, timeout_s=30, what="the champion repointed")
    with gateway.admin() as admin:
        variants = {v["name"]: v for v in admin.get(f"/admin/routes/{route}").json()["variants"]}
    assert variants["champion"]["model"] == f"{model}@champion" and variants["champion"]["weight"] == 1.0
    assert variants["champion"]["upstream"] == variants["challenger"]["upstream"]
    assert variants["champion"]["api_key_env"] == INFERENCE_TOKEN_ENV
    assert variants["challenger"]["weight"] == 0.0

    assert fb.post(f"/v1/experiments/{experiment['id']}/rollback").json()["status"] == "rolled_back"
    with gateway.admin() as admin:
        champion = {v["name"]: v for v in admin.get(f"/admin/routes/{route}").json()["variants"]}["champion"]
    assert champion["model"] == "base-model" and champion["upstream"].rstrip("/") == upstreams["alpha"].base_url
    assert champion.get("api_key_env") is None  # alpha was asked without a key: it is not sent the token


def test_a_clear_loss_is_rolled_back_and_the_version_rejected(platform, fb, upstreams):
    _, gateway, mlflow_server = platform
    model = registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = experiment_route(gateway, upstreams, "base-model", f"{model}@challenger")  # the base model as champion
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    experiment = fb.post("/v1/experiments", json=body).json()
    assert experiment["champion_version"] is None and experiment["challenger_version"] == "2"
    deliver(platform, route, "champion", ups=34, downs=6, version=None)
    deliver(platform, route, "challenger", ups=6, downs=34, version="2")
    wait_for(lambda: _status(fb, experiment["id"]) == "rolled_back", timeout_s=30, what="the rollback")
    assert route_weights(gateway, route) == {"champion": 1.0, "challenger": 0.0}
    assert mlflow_server.client().get_model_version(model, "2").tags.get("llmops.rejected") == "true"
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "1"  # untouched


def test_a_low_judge_score_rolls_the_challenger_back_whatever_the_thumbs(platform, fb, upstreams):
    """The evaluation's scores of each arm's requests feed the policy's judge guardrail."""
    _, gateway, mlflow_server = platform
    model = registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = experiment_route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    policy = FAST | {"min_judge_score": 0.6, "judge_rubric": "helpfulness"}
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": policy}
    experiment = fb.post("/v1/experiments", json=body).json()
    scored = {
        0.9: deliver(platform, route, "champion", ups=10, downs=10, version="1"),
        0.25: deliver(platform, route, "challenger", ups=10, downs=10, version="2"),  # same thumbs
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
    model = registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = experiment_route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger"}
    error = expect_error(fb.post("/v1/experiments", json=body | {"policy": FAST | {"primary_metric": "judge_score"}}),
                         422, "invalid_policy")  # fmt: skip
    assert "judge_rubric must name the rubric" in error["message"]
    policy = FAST | {"primary_metric": "judge_score", "judge_rubric": "helpfulness"}
    experiment = fb.post("/v1/experiments", json=body | {"policy": policy}).json()
    scored = {
        (0.25, 0.5): deliver(platform, route, "champion", ups=10, downs=15, version="1"),
        (0.75, 1.0): deliver(platform, route, "challenger", ups=10, downs=15, version="2"),  # same thumbs
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
    # The controller may look while the scores are still arriving (its passes run meanwhile): about +0.5.
    found = re.search(r"helpfulness judge-score difference \+(\d\.\d{3})", promotion["reason"])
    assert found and float(found.group(1)) == pytest.approx(0.5, abs=0.05), promotion["reason"]
    shown = promotion["evidence"]["readout"]
    assert (
        shown["metric"] == "judge_score" and 20 <= shown["challenger"]["n"] <= 25 and shown["difference"]["lower"] > 0
    )
    arms = {a["arm"]: a for a in detail["readout"]["arms"]}
    assert arms["challenger"]["judge_scores"] == 25 and arms["challenger"]["judge_score"] == pytest.approx(
        0.87, abs=0.01
    )
    assert arms["champion"]["judge_score_low"] < arms["champion"]["judge_score"] < arms["champion"]["judge_score_high"]
    assert mlflow_server.client().get_model_version_by_alias(model, "champion").version == "2"


def test_a_version_the_offline_gate_blocked_gets_no_canary(platform, fb, upstreams, expect_error):
    _, gateway, mlflow_server = platform
    model = registered(mlflow_server, {"champion": 1, "challenger": 2})
    mlflow_server.client().set_model_version_tag(model, "2", "llmops.offline_gate", "block")
    route = experiment_route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    expect_error(fb.post("/v1/experiments", json=body), 409, "offline_gate_blocked")
    assert route_weights(gateway, route) == {"champion": 1.0, "challenger": 0.0}  # no canary share was set
    mlflow_server.client().set_model_version_tag(model, "2", "llmops.offline_gate", "pass")
    assert fb.post("/v1/experiments", json=body).status_code == 201


def test_a_moved_alias_halts_the_experiment(platform, fb, upstreams):
    _, gateway, mlflow_server = platform
    model = registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = experiment_route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    experiment = fb.post("/v1/experiments", json=body).json()
    # Answers of another version while the alias stays: inference catching up. Kept out of the readout, no halt.
    deliver(platform, route, "challenger", ups=2, downs=0, version="1")
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
    assert route_weights(gateway, route)["challenger"] == 0.0
    # still the route's open experiment until an admin stops it
    assert fb.post(f"/v1/experiments/{experiment['id']}/stop").json()["status"] == "stopped"


def test_the_sample_ratio_check_counts_users_not_requests(platform, fb, upstreams):
    """Sticky routing keeps a user on one arm: a few heavy users on one arm are not a broken split, while an arm
    that gets too few users is, however many requests they make."""
    _, gateway, mlflow_server = platform
    policy = FAST | {"steps": [0.5], "min_ratings_per_arm": 10_000, "min_exposures_for_srm": 100}
    model = registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = experiment_route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": policy}
    experiment = fb.post("/v1/experiments", json=body).json()
    # 60 users on each arm (fewer than the check needs until both arrived); the challenger's users ask four times
    # as often: 60 against 240 requests
    deliver(platform, route, "champion", ups=0, downs=0, unrated=60, version="1")
    heavy = [uuid.uuid4().hex[:16] for _ in range(60)]
    deliver(platform, route, "challenger", ups=0, downs=0, unrated=240, version="2", users=heavy)
    srm = fb.get(f"/v1/experiments/{experiment['id']}").json()["readout"]["next"]["evidence"]["srm"]
    assert (srm["unit"], srm["champion_units"], srm["challenger_units"]) == ("users", 60, 60)
    assert srm["checked"] and srm["p_value"] > 0.5
    time.sleep(1.0)  # a few controller passes
    assert _status(fb, experiment["id"]) == "running"

    # Now 200 more users reach the champion and none the challenger: assignment is broken.
    deliver(platform, route, "champion", ups=0, downs=0, unrated=200, version="1")
    wait_for(lambda: _status(fb, experiment["id"]) == "halted", timeout_s=30, what="the halt")
    reason = fb.get(f"/v1/experiments/{experiment['id']}").json()["decisions"][-1]["reason"]
    assert reason.startswith("Sample-ratio mismatch: the challenger got 18.8% of 320 users"), reason
    fb.post(f"/v1/experiments/{experiment['id']}/stop")


def test_experiments_show_in_list_and_metrics(platform, fb, upstreams, scrape):
    service, gateway, mlflow_server = platform
    model = registered(mlflow_server, {"champion": 1, "challenger": 1})
    route = experiment_route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    body = {"route": route, "champion": "champion", "challenger": "challenger", "policy": FAST}
    experiment = fb.post("/v1/experiments", json=body).json()
    deliver(platform, route, "champion", ups=3, downs=1, version="1")
    listed = fb.get("/v1/experiments", params={"route": route}).json()["data"]
    assert [e["id"] for e in listed] == [experiment["id"]]
    key = (
        "llmops_experiment_exposures",
        frozenset({"experiment": experiment["id"], "route": route, "arm": "champion"}.items()),
    )
    wait_for(lambda: scrape(service.url).get(key) == 4, timeout_s=10, what="the experiment's gauges")
    # Both arms rated: the evidence the decision rule reads is exported too, as the readout API gives it.
    deliver(platform, route, "challenger", ups=1, downs=2, version="1")
    labels = frozenset({"experiment": experiment["id"], "route": route}.items())
    # A pass may run between the challenger's ratings: wait for the one that saw all three.
    gauges = wait_for(
        lambda: (
            (found := scrape(service.url)).get(("llmops_experiment_difference", labels)) == pytest.approx(1 / 3 - 3 / 4)
            and found
        ),
        timeout_s=10,
        what="the evidence gauges",
    )
    evidence = fb.get(f"/v1/experiments/{experiment['id']}").json()["readout"]["next"]["evidence"]
    difference = evidence["readout"]["difference"]
    for metric, field in (("difference", "difference"), ("difference_lower", "lower"),
                          ("difference_upper", "upper"), ("p_value", "p_value")):  # fmt: skip
        assert gauges[(f"llmops_experiment_{metric}", labels)] == pytest.approx(difference[field]), metric
    assert gauges[("llmops_experiment_srm_p_value", labels)] == pytest.approx(evidence["srm"]["p_value"])
    fb.post(f"/v1/experiments/{experiment['id']}/stop")
