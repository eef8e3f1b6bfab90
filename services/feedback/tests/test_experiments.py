"""Experiments on real parts: a real gateway (the route split it serves), a real MLflow registry (aliases), the
feedback service's controller deciding on request records and ratings delivered as the gateway delivers them.

The statistics themselves are tested by simulation in test_experiment_stats.py; here the policy is set so that
a few dozen ratings decide, and the tests check what the platform does with a decision.
"""

import asyncio
import time
import uuid

import httpx
import pytest

from llmops_common import sql
from llmops_feedback import db
from llmops_feedback.controller import take_lease
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
    platform, route: str, arm: str, *, ups: int, downs: int, version: str | None, unrated: int = 0, **fields
) -> None:
    """Requests of one arm, delivered the gateway's way (ingest token), ``ups`` and ``downs`` of them rated by the
    admin."""
    service = platform[0]
    records = [
        {
            "request_id": uuid.uuid4().hex,
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
        for _ in range(ups + downs + unrated)
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
