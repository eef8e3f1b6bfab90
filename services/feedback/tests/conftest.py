"""Fixtures of the feedback tests: the shared feedback service (``feedback`` from the test kit, a real process once
per SQL backend), clients holding its two tokens, and synthetic request records shaped the way the gateway sends them.

Every test works on request ids and a route of its own, so tests on the shared service never see each other's data.
"""

import asyncio
import time
import uuid

import asyncpg
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families


async def _postgres(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def new_database(request, llmops_state_dir, feedback_sql_url):
    """Makes empty databases on the backend of ``feedback_sql_url`` (dropped at the end), for tests that must not
    share the shared service's database: fresh migrations, or records other tests' exports should never meet."""
    made: list[str] = []

    def make() -> str:
        name = f"llmops_fb_{uuid.uuid4().hex[:10]}"
        if feedback_sql_url.startswith("sqlite"):
            return f"sqlite+aiosqlite:///{llmops_state_dir / f'{name}.db'}"
        server = request.getfixturevalue("postgres_server")
        asyncio.run(_postgres(server.url, f'CREATE DATABASE "{name}"'))
        made.append(name)
        return f"{server.async_url.rsplit('/', 1)[0]}/{name}"

    yield make
    if made:
        server = request.getfixturevalue("postgres_server")
        for name in made:
            asyncio.run(_postgres(server.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def own_feedback(make_feedback, new_database):
    """A feedback service on a database of its own, for a test module whose data or counters must be its own (the
    shared ``feedback`` may also serve the cross-service tests, whose gateway delivers to it in the background)."""
    return make_feedback(sql_url=new_database())


@pytest.fixture
def route() -> str:
    """A route name of this test's own: summaries and exports filtered by it see only this test's records."""
    return f"route-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_record(route):
    """A request record as the gateway emits it (``contracts.requestlog.RequestLogRecord``), with a fresh request
    id; fields override."""

    def make(**fields) -> dict:
        now = time.time()
        record = {
            "request_id": uuid.uuid4().hex,
            "key_id": "key_tests",
            "route": route,
            "variant": "a",
            "model": "base-model",
            "kind": "chat",
            "stream": False,
            "status": 200,
            "prompt": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": f"question {uuid.uuid4().hex[:8]}"},
            ],
            "answer": f"answer {uuid.uuid4().hex[:8]}",
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            "latency_ms": 120.0,
            "ttft_ms": 30.0,
            "retrieved_ids": [],
            "error": None,
            "started_at": now - 1.0,
            "finished_at": now,
        }
        record.update(fields)
        return record

    return make


@pytest.fixture
def admin(feedback):
    with feedback.admin() as client:
        yield client


@pytest.fixture
def ingester(feedback):
    """The gateway's view: the ingest token."""
    with feedback.ingest() as client:
        yield client


@pytest.fixture
def ingest(ingester):
    """Posts records with the ingest token; the batch must be taken."""

    def post(*records: dict, client: httpx.Client | None = None) -> dict:
        response = (client or ingester).post("/v1/requests", json={"records": list(records)})
        assert response.status_code == 200, response.text
        return response.json()

    return post


@pytest.fixture
def rate(admin):
    """Rates with the admin token; the rating must be taken."""

    def post(request_id: str, rating: str, *, client: httpx.Client | None = None, **fields) -> dict:
        response = (client or admin).post("/v1/feedback", json={"request_id": request_id, "rating": rating, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    return post


@pytest.fixture
def export(admin):
    """Reads a whole JSONL export and parses every line; a stream that breaks off fails the test, not errors it."""

    def read(kind: str, *, client: httpx.Client | None = None, **params) -> list[dict]:
        try:
            response = (client or admin).get(f"/v1/datasets/{kind}", params=params)
        except httpx.RemoteProtocolError as exc:  # the service raised after the 200 was sent
            pytest.fail(f"the {kind} export broke off mid-stream (the service raised; see its log): {exc}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert response.text == "" or response.text.endswith("\n")
        return [orjson.loads(line) for line in response.text.splitlines()]

    return read


@pytest.fixture
def expect_error():
    """Checks an error response: its status, and the OpenAI error body ``{"error": {message, type, code, param}}``."""

    def check(response: httpx.Response, status: int, code: str | None = None, type: str | None = None) -> dict:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "code", "param"}, error
        assert isinstance(error["message"], str) and error["message"]
        if code is not None:
            assert error["code"] == code, error
        if type is not None:
            assert error["type"] == type, error
        return error

    return check


@pytest.fixture
def scrape():
    """``/metrics`` of a service as ``{(name, frozenset(labels.items())): value}``."""

    def read(url: str) -> dict:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    return read


# Experiments: a feedback service of its own whose controller acts on the shared gateway and MLflow.
@pytest.fixture(scope="session")
def serving_token() -> str:
    """The inference service's serving token, held by the closed loop's feedback services: a fake upstream that
    stands for a closed inference service asks for it (``Behaviour.api_key``)."""
    return "serving-token-0123456789abcdef"


@pytest.fixture(scope="module")
def platform(make_feedback, new_database, gateway, mlflow_server, serving_token):
    """A feedback service of its own whose controller acts on the shared gateway and MLflow every 0.3 s."""
    service = make_feedback(
        sql_url=new_database(),
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_MLFLOW_TRACKING_URI=mlflow_server.url,
        FEEDBACK_EXPERIMENT_INTERVAL_S="0.3",
        FEEDBACK_INFERENCE_SERVING_TOKEN=serving_token,
    )
    return service, gateway, mlflow_server


@pytest.fixture
def fb(platform):
    with platform[0].admin() as client:
        yield client
