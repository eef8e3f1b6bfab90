"""The console's experiments pages against a real feedback service (its controller acting on a real gateway and
MLflow): the readout per arm, and the promote and roll back buttons moving the champion alias and the split."""

import re
import time
import uuid

import pytest

from llmops_testkit.console import console_client, post_form, sign_in
from llmops_testkit.gateway import variant


@pytest.fixture(scope="module")
def platform(make_gateway, make_feedback, llmops_state_dir, mlflow_server):
    """The feedback service needs the gateway's URL and the gateway the feedback service's: a first gateway for the
    controller, then the console's gateway on the same database (routes are shared through it)."""
    sql_url = f"sqlite+aiosqlite:///{llmops_state_dir / f'console-exp-{uuid.uuid4().hex[:6]}.db'}"
    controlled = make_gateway(sql_url=sql_url)
    feedback = make_feedback(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'console-exp-fb-{uuid.uuid4().hex[:6]}.db'}",
        FEEDBACK_GATEWAY_URL=controlled.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=controlled.admin_token,
        FEEDBACK_MLFLOW_TRACKING_URI=mlflow_server.url,
    )
    console = make_gateway(sql_url=sql_url, GATEWAY_FEEDBACK_ADMIN_TOKEN=feedback.admin_token, **feedback.gateway_env())
    return controlled, feedback, console


def rate_arm(feedback, route: str, arm: str, *, ups: int, downs: int, version: str) -> None:
    now = time.time()
    records = [
        {
            "request_id": uuid.uuid4().hex,
            "user_hash": uuid.uuid4().hex[:16],
            "key_id": "key_console",
            "route": route,
            "variant": arm,
            "model": "m",
            "model_version": version,
            "status": 200,
            "started_at": now,
            "finished_at": now,
        }
        for _ in range(ups + downs)
    ]
    with feedback.ingest() as ingest:
        assert ingest.post("/v1/requests", json={"records": records}).status_code == 200
    with feedback.admin() as admin:
        for i, record in enumerate(records):
            rated = admin.post(
                "/v1/feedback", json={"request_id": record["request_id"], "rating": "up" if i < ups else "down"}
            )
            assert rated.status_code == 201


def test_readout_promote_and_roll_back_from_the_console(platform, upstreams, mlflow_server):
    controlled, feedback, console = platform
    mlflow, model = mlflow_server.client(), f"console-{uuid.uuid4().hex[:8]}"
    mlflow.create_registered_model(model)
    for _ in range(2):
        mlflow.create_model_version(model, source="s3://llmops-tests/adapter")
    mlflow.set_registered_model_alias(model, "champion", "1")
    mlflow.set_registered_model_alias(model, "challenger", "2")
    route = controlled.put_route(
        variants=[
            variant("champion", upstreams["alpha"], model=f"{model}@champion"),
            variant("challenger", upstreams["beta"], model=f"{model}@challenger", weight=0),
        ]
    )
    with feedback.admin() as admin:
        created = admin.post(
            "/v1/experiments", json={"route": route, "champion": "champion", "challenger": "challenger"}
        )
    assert created.status_code == 201, created.text
    experiment_id = created.json()["id"]
    rate_arm(feedback, route, "champion", ups=3, downs=5, version="1")
    rate_arm(feedback, route, "challenger", ups=4, downs=1, version="2")

    with console_client(console.url) as client:
        sign_in(client, console.admin_token)
        listing = client.get("/console/experiments").text
        assert f'href="/console/experiments/{experiment_id}"' in listing and route in listing
        page = client.get(f"/console/experiments/{experiment_id}").text
        rows = re.findall(r"<tr><td>(champion|challenger)</td>.*?</tr>", page, flags=re.DOTALL)
        assert rows == ["champion", "challenger"]
        assert "38%" in page and "80%" in page  # up rates: 3 of 8, 4 of 5
        assert "Promote the challenger" in page and "Roll back" in page

        action = f"/console/experiments/{experiment_id}/promote"
        assert client.post(action, data={}).status_code == 403  # no CSRF token: nothing decided
        assert post_form(client, f"/console/experiments/{experiment_id}", action).status_code == 303
        assert mlflow.get_model_version_by_alias(model, "champion").version == "2"
        page = client.get(f"/console/experiments/{experiment_id}").text
        assert "promoted" in page and "Promote the challenger" not in page
        assert "<strong>promote</strong> by admin" in page  # the decision, recorded with its evidence
        assert "Evidence" in page

        rollback = f"/console/experiments/{experiment_id}/rollback"
        assert post_form(client, f"/console/experiments/{experiment_id}", rollback).status_code == 303
        assert mlflow.get_model_version_by_alias(model, "champion").version == "1"
        assert "rolled_back" in client.get(f"/console/experiments/{experiment_id}").text
        again = post_form(client, f"/console/experiments/{experiment_id}", action)
        assert again.status_code == 409 and "feedback" in again.text  # concluded: the service's answer, in words
