"""The experiment controller across processes and by hand: one lease holder among replicas, a restarted process
applying what the last one recorded, and an admin's decisions through the ``llmops experiments`` CLI."""

import asyncio
import json
from datetime import timedelta

import httpx
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
from llmops_testkit.backends import postgres_only
from llmops_testkit.experiments import deliver, experiment_route, registered, route_weights


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


@postgres_only  # the CLI and the decisions it takes: the store is not the subject
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

    model = registered(mlflow_server, {"champion": 1, "challenger": 2})
    route = experiment_route(gateway, upstreams, f"{model}@champion", f"{model}@challenger")
    # No verdict and no ramp of the controller's own: every decision here is the admin's.
    hold = ("--steps", "0.1,0.5", "--min-ratings", "1000", "--min-step", "1h")
    created = llmops("experiments", "create", route, "--champion", "champion", "--challenger", "challenger", *hold)
    listed = json.loads(llmops("experiments", "list", "--route", route, "--json"))
    assert [(e["status"], e["share"]) for e in listed] == [("running", 0.1)] and listed[0]["id"] in created
    experiment_id = listed[0]["id"]
    deliver(platform, route, "champion", ups=3, downs=1, version="1")
    deliver(platform, route, "challenger", ups=4, downs=0, version="2")

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
    assert route_weights(gateway, route) == {"champion": 1.0, "challenger": 0.0}

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
    route = experiment_route(gateway, upstreams, "base-model", "base-model")  # no registry arms: only the split moves
    asyncio.run(_restart_rounds(new_database(), gateway, route))
    assert route_weights(gateway, route) == {"champion": 0.1, "challenger": 0.9}


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
    assert route_weights(gateway, route)["challenger"] == 0.1  # recorded, not applied: then the process dies
    await first.engine.dispose()

    await asyncio.sleep(0.35)  # its lease expires; a new process, with nothing in memory, takes over
    second = _process(url, gateway.url, gateway.admin_token)
    try:
        assert await run_once(second, holder="second") == []  # applied, not decided again
        assert route_weights(gateway, route) == {"champion": 0.5, "challenger": 0.5}
        experiment, decisions = await stored(second, experiment_id)
        assert [d.action for d in decisions] == ["start", "ramp"] and decisions[-1].applied
        assert experiment.step_started_at == ramp.created_at  # the new step's clock started at the decision
        # The step's hour, counted from the recorded ramp, is not over (100 s short: a loaded machine may take a
        # second or two between here and the look, which with 1 s to spare decided the ramp early).
        await age_step(second, experiment_id, 3500)
        assert await run_once(second, holder="second") == []
        await age_step(second, experiment_id, 101)  # now it is, though this process started a moment ago
        assert await run_once(second, holder="second") == [(experiment_id, "ramp")]
        experiment, decisions = await stored(second, experiment_id)
        assert (experiment.share, [d.action for d in decisions]) == (0.9, ["start", "ramp", "ramp"])
    finally:
        await second.engine.dispose()
