"""RAG end to end: a client's request through the real gateway, context from the real retriever (Qdrant Edge,
real embeddings), the answer from a fake OpenAI upstream that records exactly what it was sent."""

import time
import uuid
from types import SimpleNamespace

import httpx
import orjson
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from llmops_cli.procs import free_port
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.processes import start_together


@pytest.fixture(scope="module")
def gateways(make_gateway, edge_retriever, llmops_state_dir) -> SimpleNamespace:
    """The module's gateways, started side by side: on the retriever, on a retriever that is down, without one."""
    dead = {"GATEWAY_RETRIEVER_URL": f"http://127.0.0.1:{free_port()}", "GATEWAY_RETRIEVER_TOKEN": "t" * 24}
    made = SimpleNamespace(
        rag=make_gateway(
            sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'rag-gateway.db'}",
            **edge_retriever.gateway_env(),
            start=False,
        ),
        down=make_gateway(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'rag-down.db'}", **dead, start=False),
        none=make_gateway(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'rag-none.db'}", start=False),
    )
    start_together(made.rag, made.down, made.none)
    return made


@pytest.fixture(scope="module")
def rag_gateway(gateways):
    return gateways.rag


@pytest.fixture(scope="module")
def kb(edge_retriever, corpus) -> str:
    name = f"kb-{uuid.uuid4().hex[:8]}"
    edge_retriever.create_collection(name, hybrid=True)
    documents = [{"id": corpus.FACT_ID, "text": corpus.FACT, "metadata": {"kind": "almanac"}}]
    documents += [{"id": d, "text": t, "metadata": {"kind": "guide"}} for d, t in corpus.DISTRACTORS.items()]
    edge_retriever.ingest(name, documents)
    return name


@pytest.fixture(scope="module")
def key(rag_gateway) -> str:
    return rag_gateway.create_key()[1]


def log_record(gateway, request_id: str, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gateway.request_log_path.exists():
            for line in gateway.request_log_path.read_bytes().splitlines():
                record = orjson.loads(line)
                if record["request_id"] == request_id:
                    return record
        time.sleep(0.1)
    raise AssertionError(f"no request log record for {request_id}")


def test_context_goes_into_the_prompt_and_sources_come_back(rag_gateway, upstreams, kb, key, corpus):
    # grounded-v1: context in the system message, the question untouched (what these checks read)
    route = rag_gateway.put_route(variants=[variant("a", upstreams["alpha"])], rag={"template": "grounded-v1"})
    with rag_gateway.client(key) as client:
        response = client.post(
            "/v1/chat/completions", json=chat_body(route, corpus.FACT_QUESTION, rag={"collection": kb, "top_k": 3})
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-llmops-rag"] == "context"
    body = response.json()
    assert body["choices"][0]["message"]["content"].startswith("alpha:")
    sources = body["sources"]
    assert len(sources) == 3 and [s["index"] for s in sources] == [1, 2, 3]
    assert sources[0]["document_id"] == corpus.FACT_ID and "Odalys Quenterby" in sources[0]["snippet"]
    assert sources[0]["chunk_index"] == 0 and sources[0]["score"] > 0 and sources[0]["metadata"] == {"kind": "almanac"}

    sent = upstreams["alpha"].stats.requests[-1]
    assert "rag" not in sent  # an extension of ours: never sent upstream
    system, user = sent["messages"]
    assert system["role"] == "system" and "[1] " + corpus.FACT in system["content"]
    assert user == {"role": "user", "content": corpus.FACT_QUESTION}

    record = log_record(rag_gateway, response.headers["x-request-id"])
    assert record["retrieved_ids"] == [s["id"] for s in sources]
    assert corpus.FACT in record["prompt"][0]["content"]  # the log holds the prompt the model saw


def sse_events(response: httpx.Response) -> list[bytes]:
    data = b"".join(response.iter_bytes())
    return [e[len(b"data: ") :] for e in data.split(b"\n\n") if e.startswith(b"data: ")]


def test_a_streamed_answer_ends_with_a_sources_event(rag_gateway, upstreams, kb, key, corpus):
    route = rag_gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    body = chat_body(route, corpus.FACT_QUESTION, stream=True, rag={"collection": kb, "top_k": 2})
    with rag_gateway.client(key) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = sse_events(response)
    assert events[-1] == b"[DONE]"
    last = orjson.loads(events[-2])
    assert last["choices"] == [] and last["sources"][0]["document_id"] == corpus.FACT_ID
    assert [orjson.loads(e).get("usage") is not None for e in events[:-2]][-1]  # the usage chunk just before it
    text = "".join(c["choices"][0]["delta"]["content"] for c in map(orjson.loads, events[:-2]) if c["choices"])
    assert text.startswith("alpha:")

    # The official client reads such a stream unchanged; the sources are an extra field of the last chunk.
    sdk = OpenAI(base_url=f"{rag_gateway.url}/v1", api_key=key)
    stream = sdk.chat.completions.create(
        model=route,
        messages=[{"role": "user", "content": corpus.FACT_QUESTION}],
        stream=True,
        extra_body={"rag": {"collection": kb}},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("alpha:")
    assert (chunks[-1].model_extra or {})["sources"][0]["document_id"] == corpus.FACT_ID


def test_a_route_with_a_default_collection_and_template(rag_gateway, upstreams, kb, key, corpus):
    rag = {"collection": kb, "top_k": 2, "template": "context-first-v1"}
    route = rag_gateway.put_route(variants=[variant("a", upstreams["alpha"])], rag=rag)
    with rag_gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route, corpus.FACT_QUESTION))
        assert response.status_code == 200 and response.json()["sources"][0]["document_id"] == corpus.FACT_ID
        _, user = upstreams["alpha"].stats.requests[-1]["messages"]
        assert user["content"].startswith("Context:\n[1] " + corpus.FACT) and corpus.FACT_QUESTION in user["content"]

        skipped = client.post("/v1/chat/completions", json=chat_body(route, "hello", rag=False))
        assert skipped.status_code == 200 and "sources" not in skipped.json()
        assert upstreams["alpha"].stats.requests[-1]["messages"] == [{"role": "user", "content": "hello"}]

        narrower = client.post("/v1/chat/completions", json=chat_body(route, "q", rag={"top_k": 1}))
        assert len(narrower.json()["sources"]) == 1
        other = client.post("/v1/chat/completions", json=chat_body(route, "q", rag={"collection": "elsewhere"}))
        assert other.status_code == 403 and other.json()["error"]["code"] == "rag_collection_not_allowed"


def test_filters_and_text_completions(rag_gateway, upstreams, kb, key, corpus):
    # grounded-v1: context in the system message, the question untouched (what these checks read)
    route = rag_gateway.put_route(variants=[variant("a", upstreams["alpha"])], rag={"template": "grounded-v1"})
    guides = {"must": [{"key": "metadata.kind", "match": {"value": "guide"}}]}
    with rag_gateway.client(key) as client:
        response = client.post(
            "/v1/chat/completions",
            json=chat_body(route, corpus.FACT_QUESTION, rag={"collection": kb, "filter": guides}),
        )
        assert response.status_code == 200
        assert corpus.FACT_ID not in {s["document_id"] for s in response.json()["sources"]}
        text = client.post(
            "/v1/completions", json={"model": route, "prompt": corpus.FACT_QUESTION, "rag": {"collection": kb}}
        )
        assert text.status_code == 200 and text.json()["sources"][0]["document_id"] == corpus.FACT_ID
        prompt = upstreams["alpha"].stats.requests[-1]["prompt"]
        assert corpus.FACT in prompt and prompt.endswith(corpus.FACT_QUESTION)


SECRET_FACT = "The vault code of the Selbrook harbour office is kept on a card by the clerk Ambrose Tillinghast."
SECRET_QUESTION = "Who keeps the card with the vault code in Selbrook?"


def searches(retriever, collection: str) -> float:
    """The searches the retriever itself ran in a collection (its own count: a refusal must never reach it)."""
    text = httpx.get(f"{retriever.url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "llmops_retriever_searches_total" and sample.labels.get("collection") == collection
    )


def test_a_key_retrieves_only_from_the_collections_granted_to_it(rag_gateway, edge_retriever, upstreams, kb, corpus):
    """A key granted collection A gets answers grounded in A; B, which the route allows, is refused for it (named,
    or as the route's default) before the retriever is asked, until an admin grants B too."""
    secret = f"secret-{uuid.uuid4().hex[:8]}"
    edge_retriever.create_collection(secret)
    edge_retriever.ingest(secret, [{"id": "vault", "text": SECRET_FACT}])
    key_id, key = rag_gateway.create_key(allowed_collections=[kb])
    any_collection = rag_gateway.put_route(variants=[variant("a", upstreams["alpha"])], rag={"template": "grounded-v1"})
    secret_by_default = rag_gateway.put_route(variants=[variant("a", upstreams["alpha"])], rag={"collection": secret})
    alpha = upstreams["alpha"].stats.requests
    with rag_gateway.client(key) as client:
        granted = client.post(
            "/v1/chat/completions", json=chat_body(any_collection, corpus.FACT_QUESTION, rag={"collection": kb})
        )
        assert granted.status_code == 200, granted.text
        assert granted.json()["sources"][0]["document_id"] == corpus.FACT_ID
        assert corpus.FACT in alpha[-1]["messages"][0]["content"]  # the answer is grounded in A

        asked = len(alpha)
        for body in (
            chat_body(any_collection, SECRET_QUESTION, rag={"collection": secret}),
            chat_body(secret_by_default, SECRET_QUESTION),
            chat_body(secret_by_default, SECRET_QUESTION, rag={"top_k": 2}),
        ):
            refused = client.post("/v1/chat/completions", json=body)
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "collection_not_allowed"
            assert refused.json()["error"]["type"] == "permission_error"
        assert len(alpha) == asked and searches(edge_retriever, secret) == 0  # neither model nor retriever asked
        skipped = client.post("/v1/chat/completions", json=chat_body(secret_by_default, "hello", rag=False))
        assert skipped.status_code == 200 and "sources" not in skipped.json()

        with rag_gateway.admin() as admin:  # the grant widened: this replica applies it at once
            patched = admin.patch(f"/admin/keys/{key_id}", json={"allowed_collections": [kb, secret]})
            assert patched.json()["allowed_collections"] == [kb, secret]
        now_granted = client.post("/v1/chat/completions", json=chat_body(secret_by_default, SECRET_QUESTION))
        assert now_granted.status_code == 200, now_granted.text
        assert now_granted.json()["sources"][0]["document_id"] == "vault" and searches(edge_retriever, secret) == 1


@pytest.mark.parametrize(
    ("rag", "status", "code"),
    [
        ({"collection": "no-such-collection"}, 404, "rag_collection_not_found"),
        ({}, 422, "invalid_rag"),  # this route has no default collection
        ({"collection": "x", "top_k": 0}, 422, "invalid_rag"),
        ({"collection": "x", "bogus": 1}, 422, "invalid_rag"),
        ("kb", 422, "invalid_rag"),
        ({"collection": "KB", "filter": {"must": [{"key": "nope", "match": {"value": 1}}]}}, 422, "invalid_rag"),
    ],
)
def test_bad_rag_requests(rag_gateway, upstreams, kb, key, rag, status, code):
    route = rag_gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    if isinstance(rag, dict) and rag.get("collection") == "KB":
        rag = {**rag, "collection": kb}
    with rag_gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route, "question", rag=rag))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert upstreams["alpha"].stats.requests == []


def test_retriever_down_fails_or_answers_without_context_by_route(gateways, upstreams):
    gateway = gateways.down
    _, key = gateway.create_key()
    strict = gateway.put_route(variants=[variant("a", upstreams["alpha"])], rag={"collection": "kb"})
    lenient = gateway.put_route(
        variants=[variant("a", upstreams["alpha"])],
        rag={"collection": "kb", "on_retriever_error": "answer_without_context"},
    )
    with gateway.client(key) as client:
        failed = client.post("/v1/chat/completions", json=chat_body(strict, "question"))
        assert failed.status_code == 503 and failed.json()["error"]["code"] == "retriever_unavailable"
        assert upstreams["alpha"].stats.requests == []
        answered = client.post("/v1/chat/completions", json=chat_body(lenient, "question"))
    assert answered.status_code == 200 and answered.json()["sources"] == []
    assert answered.headers["x-llmops-rag"] == "no-context"
    system = upstreams["alpha"].stats.requests[-1]["messages"][0]
    assert system["role"] == "system" and "no documents were consulted" in system["content"]


def test_without_a_retriever_rag_is_refused(gateways, upstreams):
    gateway = gateways.none
    _, key = gateway.create_key()
    plain = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    with_default = gateway.put_route(variants=[variant("a", upstreams["alpha"])], rag={"collection": "kb"})
    with gateway.client(key) as client:
        for route, extra in ((plain, {"rag": {"collection": "kb"}}), (with_default, {})):
            response = client.post("/v1/chat/completions", json=chat_body(route, "question", **extra))
            assert response.status_code == 400 and response.json()["error"]["code"] == "rag_unavailable"
        assert client.post("/v1/chat/completions", json=chat_body(plain, "question")).status_code == 200
