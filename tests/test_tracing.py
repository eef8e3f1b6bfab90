"""OpenTelemetry traces across the gateway, its upstream, the retriever and the feedback service, as a collector
receives them.

A real OTLP/HTTP receiver on loopback (``llmops_testkit.otlp``) decodes what the services export; the gateway, the
retriever (Qdrant Edge, real embeddings) and the feedback service are real processes exporting to it, the model a
fake OpenAI upstream that records the headers it was sent. With tracing off (no endpoint), nothing is installed.
"""

import json
import secrets
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from llmops_cli.procs import free_port
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.processes import start_together
from llmops_testkit.trainer import Trainer, trainer_env


@pytest.fixture(scope="module")
def traced(make_gateway, make_feedback, make_retriever, llmops_state_dir, otlp_receiver, _fake_upstreams):
    """A gateway, its retriever (Qdrant Edge, one small collection) and a feedback service (SQLite both) exporting
    their spans to the receiver; started side by side."""
    retriever = make_retriever(store="edge", **otlp_receiver.env(), start=False)
    feedback = make_feedback(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'traced-fb-{uuid.uuid4().hex[:6]}.db'}",
        **otlp_receiver.env(),
        start=False,
    )
    gateway = make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'traced-gw-{uuid.uuid4().hex[:6]}.db'}",
        **feedback.gateway_env(),
        **retriever.gateway_env(),
        **otlp_receiver.env(),
        start=False,
    )
    start_together(retriever, feedback, gateway)
    retriever.create_collection("harbour")
    retriever.ingest("harbour", [{"id": "almanac", "text": "The harbour master of Velmora is Odalys Brenn."}])
    return gateway, feedback


@pytest.fixture(scope="module")
def key(traced) -> str:
    return traced[0].create_key()[1]


def client_traceparent() -> tuple[str, str, str]:
    """A W3C traceparent as a traced client would send it: (header, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def spans_named(spans, service: str, name: str, trace_id: str):
    return [s for s in spans if s.service == service and s.name == name and s.trace_id == trace_id]


def stored_record(feedback, request_id: str, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    with feedback.admin() as admin:
        while time.monotonic() < deadline:
            response = admin.get(f"/v1/requests/{request_id}")
            if response.status_code == 200:
                return response.json()
            time.sleep(0.1)
    raise AssertionError(f"request {request_id} never reached the feedback service")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_one_trace_from_the_client_through_the_gateway_to_the_upstream(traced, key, upstreams, otlp_receiver, stream):
    gateway, feedback = traced
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"], model="alpha-model")])
    header, trace_id, client_span = client_traceparent()
    body = chat_body(route, max_tokens=7, temperature=0.5, stream=stream)
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=body, headers={"traceparent": header})
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]

    spans = otlp_receiver.wait_for(lambda s: spans_named(s, "llmops-gateway", f"chat {route}", trace_id))
    (server,) = spans_named(spans, "llmops-gateway", "POST /v1/chat/completions", trace_id)
    (completion,) = spans_named(spans, "llmops-gateway", f"chat {route}", trace_id)
    # parent and child: the client's span -> the gateway's request -> the call to the model
    assert server.parent_span_id == client_span and server.kind == "server"
    assert completion.parent_span_id == server.span_id and completion.kind == "client"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["llmops.request_id"] == request_id
    usage = upstreams["alpha"].behaviour
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "gen_ai.system": "vllm",
        "gen_ai.request.model": route,
        "gen_ai.response.model": "alpha-model",
        "gen_ai.request.max_tokens": 7,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.response.finish_reasons": ["stop"],
        "llmops.variant": "a",
        "llmops.stream": stream,
    }
    assert {name: completion.attributes.get(name) for name in expected} == expected
    assert completion.attributes["gen_ai.usage.output_tokens"] > 0
    # The upstream was told the model call's span as its parent, in the same trace.
    (sent,) = upstreams["alpha"].stats.headers
    assert sent["traceparent"] == f"00-{trace_id}-{completion.span_id}-01"
    # The request-log record carries the trace id to the feedback service, which stores it.
    assert stored_record(feedback, request_id)["trace_id"] == trace_id


def test_a_rag_request_is_one_trace_through_the_gateway_and_the_retriever(traced, key, upstreams, otlp_receiver):
    gateway, _ = traced
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])], rag={"collection": "harbour", "top_k": 2})
    header, trace_id, client_span = client_traceparent()
    with gateway.client(key) as client:
        response = client.post(
            "/v1/chat/completions", json=chat_body(route, "Who is the harbour master?"), headers={"traceparent": header}
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-llmops-rag"] == "context"

    expected = [
        ("llmops-gateway", "POST /v1/chat/completions"),
        ("llmops-gateway", "retrieve"),
        ("llmops-retriever", "POST /v1/collections/{collection}/search"),
        ("llmops-retriever", "embeddings all-MiniLM-L6-v2"),
        ("llmops-retriever", "search"),
        ("llmops-gateway", f"chat {route}"),
    ]
    # Every span awaited, not only the last ones: each process exports in batches of its own, and on a loaded
    # machine an export can be retried after the next one has arrived (seen once in a full run).
    spans = otlp_receiver.wait_for(
        lambda s: all(spans_named(s, service, name, trace_id) for service, name in expected), timeout_s=30
    )
    (server,) = spans_named(spans, "llmops-gateway", "POST /v1/chat/completions", trace_id)
    (retrieve,) = spans_named(spans, "llmops-gateway", "retrieve", trace_id)
    (at_retriever,) = spans_named(spans, "llmops-retriever", "POST /v1/collections/{collection}/search", trace_id)
    (embed,) = spans_named(spans, "llmops-retriever", "embeddings all-MiniLM-L6-v2", trace_id)
    (search,) = spans_named(spans, "llmops-retriever", "search", trace_id)
    (completion,) = spans_named(spans, "llmops-gateway", f"chat {route}", trace_id)
    # client -> gateway request -> retrieve (client span) -> retriever's request -> its embedding and engine search;
    # the model call after it, a sibling under the gateway's request
    assert server.parent_span_id == client_span
    assert retrieve.parent_span_id == server.span_id and retrieve.kind == "client"
    assert at_retriever.parent_span_id == retrieve.span_id and at_retriever.kind == "server"
    assert embed.parent_span_id == at_retriever.span_id and search.parent_span_id == at_retriever.span_id
    assert completion.parent_span_id == server.span_id
    assert retrieve.attributes["llmops.rag.collection"] == "harbour" and retrieve.attributes["llmops.rag.hits"] == 1
    assert at_retriever.attributes["http.response.status_code"] == 200
    assert embed.attributes["gen_ai.operation.name"] == "embeddings"
    assert {k: search.attributes[k] for k in ("db.system.name", "db.collection.name", "llmops.search.hits")} == {
        "db.system.name": "qdrant",
        "db.collection.name": "harbour",
        "llmops.search.hits": 1,
    }
    # The gateway's request id goes along: the retriever's span carries the same one.
    assert at_retriever.attributes["llmops.request_id"] == server.attributes["llmops.request_id"]


def test_a_rating_joins_the_trace_at_the_feedback_service_and_log_lines_carry_it(traced, key, upstreams, otlp_receiver):
    gateway, feedback = traced
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    with gateway.client(key) as client:
        request_id = client.post("/v1/chat/completions", json=chat_body(route)).headers["x-request-id"]
        stored_record(feedback, request_id)
        header, trace_id, _ = client_traceparent()
        rated = client.post(
            "/v1/feedback", json={"request_id": request_id, "rating": "up"}, headers={"traceparent": header}
        )
    assert rated.status_code == 201, rated.text
    spans = otlp_receiver.wait_for(
        lambda s: all(
            spans_named(s, service, "POST /v1/feedback", trace_id) for service in ("llmops-gateway", "llmops-feedback")
        )
    )
    (at_gateway,) = spans_named(spans, "llmops-gateway", "POST /v1/feedback", trace_id)
    (at_feedback,) = spans_named(spans, "llmops-feedback", "POST /v1/feedback", trace_id)
    assert at_feedback.parent_span_id == at_gateway.span_id  # gateway -> feedback, over aiohttp
    # The request log's delivery is a trace of its own, the feedback service's ingest its child.
    delivered = otlp_receiver.wait_for(lambda s: any(x.name == "POST /v1/requests" for x in s))
    delivery = {s.span_id: s for s in delivered if s.name == "deliver request log"}
    ingest = next(s for s in delivered if s.name == "POST /v1/requests")
    assert ingest.parent_span_id in delivery and delivery[ingest.parent_span_id].kind == "producer"

    # A log line written while a request is traced carries its trace id (an upstream refusal logs a warning).
    upstreams["alpha"].behaviour.status = 503
    header, trace_id, _ = client_traceparent()
    with gateway.client(key) as client:
        answer = client.post("/v1/chat/completions", json=chat_body(route), headers={"traceparent": header})
    assert answer.status_code == 502
    deadline = time.monotonic() + 5
    while not (lines := [line for line in gateway.logs().splitlines() if trace_id in line]):
        assert time.monotonic() < deadline, "no log line carries the trace id"
        time.sleep(0.1)
    entry = json.loads(lines[0])
    assert entry["trace_id"] == trace_id and len(entry["span_id"]) == 16 and entry["request_id"]
    errors = otlp_receiver.wait_for(lambda s: spans_named(s, "llmops-gateway", f"chat {route}", trace_id))
    (failed,) = spans_named(errors, "llmops-gateway", f"chat {route}", trace_id)
    assert failed.status_code == 2 and failed.attributes["error.type"] == "502"


@pytest.fixture(scope="module")
def retraining(traced, make_feedback, otlp_receiver, redis_url, llmops_state_dir):
    """A feedback service whose retraining controller submits to a trainer API (no worker: jobs stay queued) that
    reads its dataset back from it; both export their spans to the receiver."""
    gateway, _ = traced
    trainer_port = free_port()  # each must know the other's address before it starts
    run = uuid.uuid4().hex[:6]
    feedback = make_feedback(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'traced-retraining-{run}.db'}",
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_TRAINER_URL=f"http://127.0.0.1:{trainer_port}",
        FEEDBACK_EXPERIMENT_INTERVAL_S="0.3",
        **otlp_receiver.env(),
        start=False,
    )
    state_dir = llmops_state_dir / f"traced-trainer-{run}"
    env = trainer_env(
        sql_url=f"sqlite+aiosqlite:///{state_dir / 'trainer.db'}",
        redis_url=redis_url,
        mlflow_uri="http://127.0.0.1:9",  # never reached: no worker trains
        state_dir=state_dir,
        admin_token=feedback.admin_token,
        TRAINER_FEEDBACK_URL=feedback.url,
        TRAINER_FEEDBACK_TOKEN=feedback.admin_token,
        **otlp_receiver.env(),
    )
    trainer = Trainer(env=env, state_dir=state_dir, port=trainer_port)
    trainer.launch(workers=0)  # the job API alone, starting beside the feedback service
    feedback.launch()
    feedback.wait()
    trainer.wait_ready(timeout_s=60)
    yield feedback, trainer
    trainer.stop()


def test_a_retraining_submission_carries_its_trace_to_the_trainer_and_back(
    traced, retraining, upstreams, otlp_receiver
):
    gateway, _ = traced
    feedback, trainer = retraining
    route = gateway.put_route(variants=[variant("base", upstreams["alpha"], model="base-model")])
    now = time.time()
    record = {
        "request_id": uuid.uuid4().hex,
        "key_id": "key_traced",
        "route": route,
        "variant": "base",
        "status": 200,
        "prompt": [{"role": "user", "content": "Who keeps the lighthouse?"}],
        "answer": "I do not know.",
        "started_at": now,
        "finished_at": now,
    }
    with feedback.ingest() as ingest:
        assert ingest.post("/v1/requests", json={"records": [record]}).status_code == 200
    policy = {
        "model_name": f"traced-{uuid.uuid4().hex[:6]}",
        "champion": "base",
        "min_examples": 1,
        "cooldown_s": 0,
        "job": {"training": {"max_steps": 1}},
    }
    with feedback.admin() as admin:
        rating = {"request_id": record["request_id"], "rating": "down", "correction": "Odalys keeps it."}
        assert admin.post("/v1/feedback", json=rating).status_code == 201
        assert admin.put(f"/v1/retraining/{route}", json=policy).status_code == 200, admin.get("/v1/retraining").text
        deadline = time.monotonic() + 15
        while not (job_id := admin.get(f"/v1/retraining/{route}").json()["job_id"]):
            assert time.monotonic() < deadline, admin.get(f"/v1/retraining/{route}").json()
            time.sleep(0.2)
    assert trainer.job(job_id)["state"] == "queued"

    def chain(spans) -> dict:
        submits = [s for s in spans if s.name == "retraining submit" and s.attributes.get("llmops.route") == route]
        if not submits:
            return {}
        trace_id = submits[0].trace_id
        found = {
            "submit": submits,
            "jobs": spans_named(spans, "llmops-trainer", "POST /jobs", trace_id),
            "export": spans_named(spans, "llmops-feedback", "GET /v1/datasets/{kind}", trace_id),
        }
        return found if all(found.values()) else {}

    found = chain(otlp_receiver.wait_for(lambda s: chain(s)))
    (submit,), (jobs,), (export,) = found["submit"], found["jobs"], found["export"]
    # feedback's controller -> the trainer's job API (httpx) -> the feedback service's SFT export (aiohttp)
    assert submit.service == "llmops-feedback" and submit.attributes["llmops.examples"] == 1
    assert jobs.parent_span_id == submit.span_id and jobs.attributes["http.response.status_code"] == 201
    assert export.parent_span_id == jobs.span_id


def test_probes_and_scrapes_make_no_spans(traced, otlp_receiver):
    gateway, _ = traced
    for path in ("/healthz", "/readyz", "/metrics"):
        httpx.get(gateway.url + path)
    httpx.get(gateway.url + "/v1/models")  # traced: the marker that the probes before it were seen (or not)
    spans = otlp_receiver.wait_for(lambda s: any(x.name == "GET /v1/models" for x in s))
    assert not [s for s in spans if s.attributes.get("url.path") in ("/healthz", "/readyz", "/metrics")]


OFF = """
import json, sys
from opentelemetry import trace
from llmops_common import tracing
from llmops_gateway.app import create_app
from llmops_gateway.settings import GatewaySettings

app = create_app(GatewaySettings(dev_mode=True, log_json=True))
headers = []
tracing.inject_headers(headers)
print(json.dumps({
    "enabled": tracing.enabled(),
    "proxy_provider": type(trace.get_tracer_provider()).__name__,
    "middleware": [m.cls.__name__ for m in app.user_middleware],
    "sdk_loaded": "opentelemetry.sdk.trace" in sys.modules,
    "exporter_loaded": "opentelemetry.exporter.otlp.proto.http.trace_exporter" in sys.modules,
    "injected": headers,
    "aiohttp_configs": len(tracing.aiohttp_trace_configs()),
    "log_fields": tracing.log_fields(),
}))
"""


def test_with_tracing_off_nothing_is_installed(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GATEWAY_DATABASE_URL": "sqlite+aiosqlite://"}
    out = subprocess.run([sys.executable, "-c", OFF], env=env, capture_output=True, text=True, timeout=60, check=True)
    state = json.loads(out.stdout.strip().splitlines()[-1])
    assert state == {
        "enabled": False,
        "proxy_provider": "ProxyTracerProvider",  # OTel's placeholder: no provider was ever set
        "middleware": ["HeaderLimitMiddleware", "RequestIdMiddleware"],
        "sdk_loaded": False,
        "exporter_loaded": False,
        "injected": [],
        "aiohttp_configs": 0,
        "log_fields": {},
    }


def test_no_key_secret_reaches_a_span_or_an_error_body(traced, key, upstreams, otlp_receiver):
    gateway, _ = traced
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    wrong = key[:-4] + "abcd"
    with gateway.client(wrong) as client:
        refused = client.post("/v1/chat/completions", json=chat_body(route))
    assert refused.status_code == 401 and wrong not in refused.text
    with gateway.client(key) as client:
        request_id = client.post("/v1/chat/completions", json=chat_body(route)).headers["x-request-id"]
    spans = otlp_receiver.wait_for(lambda s: any(x.attributes.get("llmops.request_id") == request_id for x in s))
    exported = repr([(s.name, s.attributes) for s in spans])
    assert key not in exported and wrong not in exported and key[len("sk-llmops-") :][:12] not in exported
