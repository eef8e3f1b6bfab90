"""Experiments as the feedback tests set them up: registered model versions with aliases, a route of a champion and
a challenger variant, and one arm's requests delivered and rated the gateway's way."""

import time
import uuid

from llmops_testkit.gateway import variant


def registered(mlflow_server, aliases: dict[str, int]) -> str:
    """A registered model with as many versions as needed and ``aliases`` pointing at them; returns its name."""
    client, name = mlflow_server.client(), f"bot-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    for _ in range(max(aliases.values())):
        client.create_model_version(name, source="s3://llmops-tests/adapter")
    for alias, version in aliases.items():
        client.set_registered_model_alias(name, alias, str(version))
    return name


def experiment_route(
    gateway, upstreams, champion_model: str, challenger_model: str, *, challenger_key: str | None = None
) -> str:
    """Champion on upstream alpha, challenger on beta without traffic (and naming ``challenger_key`` in its
    ``api_key_env``)."""
    challenger = variant("challenger", upstreams["beta"], model=challenger_model, weight=0)
    return gateway.put_route(
        variants=[
            variant("champion", upstreams["alpha"], model=champion_model),
            challenger | ({"api_key_env": challenger_key} if challenger_key else {}),
        ]
    )


def route_weights(gateway, route: str) -> dict[str, float]:
    with gateway.admin() as admin:
        return {v["name"]: v["weight"] for v in admin.get(f"/admin/routes/{route}").json()["variants"]}


def deliver(
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
