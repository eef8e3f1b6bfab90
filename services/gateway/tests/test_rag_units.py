"""RAG pieces that need no services: the sources event in a stream, the context budget, route validation, the
search client against a retriever that answers too much, the key's collection grant. The whole flow is tested end
to end against a real retriever in services/retriever/tests/test_rag.py."""

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from llmops_common.contracts.search import SearchHit
from llmops_common.errors import APIError
from llmops_common.http import make_http_session
from llmops_gateway.keys.schemas import KeyCreate, KeyUpdate
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.rag.client import RetrieverClient, RetrieverUnavailable
from llmops_gateway.rag.schemas import RagRoute
from llmops_gateway.rag.service import Retrieval
from llmops_gateway.rag.sources import context_block
from llmops_gateway.rag.stream import DoneInjector
from llmops_gateway.routing.schemas import RouteSpec

EVENT = b'data: {"sources": []}\n\n'
STREAM = (
    b'data: {"choices": [{"delta": {"content": "say data: [DONE] now"}}]}\n\n'
    b'data: {"choices": [], "usage": {"prompt_tokens": 3}}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("piece", [1, 2, 5, 13, len(STREAM)])
def test_the_event_goes_just_before_done_however_the_stream_is_split(piece):
    injector = DoneInjector(EVENT)
    out = b"".join(injector.feed(STREAM[i : i + piece]) for i in range(0, len(STREAM), piece)) + injector.finish()
    done = STREAM.rindex(b"data: [DONE]")  # the first one is inside a JSON string
    assert out == STREAM[:done] + EVENT + STREAM[done:]


def test_bytes_pass_through_unheld_and_a_stream_without_done_gets_the_event_last():
    injector = DoneInjector(EVENT)
    chunk = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'
    assert injector.feed(chunk) == chunk  # nothing held back: no added latency per token
    assert injector.feed(b"data: [DO") == b""  # might be the marker: held
    assert injector.feed(b"GGY]\n\n") == b"data: [DOGGY]\n\n"  # was not
    assert injector.finish() == EVENT and injector.finish() == b""


def chunk(i: int, text: str) -> SearchHit:
    return SearchHit(id=f"id{i}", document_id=f"d{i}", chunk_index=0, score=1.0 / (i + 1), text=text, metadata={})


def test_the_context_keeps_within_its_budget_in_rank_order():
    chunks = [chunk(0, "alpha " * 10), chunk(1, "beta " * 10), chunk(2, "gamma " * 100)]
    block, used = context_block(chunks, max_chars=200)
    assert [c.id for c in used] == ["id0", "id1"] and block.startswith("[1] alpha") and "\n[2] beta" in block
    assert len(block) <= 200
    first_only, used = context_block([chunk(0, "x" * 1000)], max_chars=200)
    assert len(used) == 1 and len(first_only) == 200 and first_only.endswith("…")  # the best one, cut to fit
    assert context_block([], max_chars=200)[0] == "(no relevant sources were found)"


def test_route_rag_settings_are_validated_and_optional():
    variant = {"name": "a", "upstream": "http://127.0.0.1:1/v1", "model": "m"}
    assert RouteSpec(variants=[variant]).rag is None  # routes stored before RAG existed still load
    spec = RouteSpec(variants=[variant], rag={"collection": "kb", "allowed_collections": ["other"]})
    assert spec.rag.may_use("kb") and spec.rag.may_use("other") and not spec.rag.may_use("third")
    assert RagRoute().may_use("anything") and not RagRoute(collection="kb").may_use("other")
    custom = {"version": "mine-v1", "system": "Use these: {sources}", "user": "Q: {question}"}
    assert RagRoute(template=custom).prompt().version == "mine-v1"
    for bad in (
        {"template": "no-such-version"},
        {"template": {"version": "v", "system": "no placeholder"}},
        {"on_retriever_error": "shrug"},
        {"top_k": 0},
        {"collection": "bad/name"},
    ):
        with pytest.raises(ValidationError):
            RagRoute.model_validate(bad)


class NeverSearched:
    """Planning decides without the retriever: a search here would be a refused request reaching it."""

    async def search(self, **_):
        raise AssertionError("the retriever was asked")


def plan(route: RagRoute | None, rag, granted):
    retrieval = Retrieval(NeverSearched(), GatewayMetrics(CollectorRegistry()))
    payload = {"model": "r", "messages": [{"role": "user", "content": "q"}]}
    if rag is not None:
        payload["rag"] = rag
    try:
        return retrieval.plan(payload, route, granted=granted)
    finally:
        assert "rag" not in payload  # never sent upstream, refused or not


OPEN = RagRoute()  # any collection a request names
DEFAULT_A = RagRoute(collection="a", allowed_collections=["b"])


@pytest.mark.parametrize(
    ("route", "rag", "granted", "collection"),
    [
        (OPEN, {"collection": "a"}, None, "a"),  # no grant: the route alone decides (keys made before grants)
        (OPEN, {"collection": "a"}, frozenset({"a", "c"}), "a"),
        (DEFAULT_A, None, frozenset({"a"}), "a"),  # the route's default, granted
        (DEFAULT_A, {"collection": "b"}, frozenset({"b"}), "b"),
        (DEFAULT_A, False, frozenset(), None),  # "rag": false skips the default: nothing to grant
        (OPEN, None, frozenset(), None),  # no RAG asked for
    ],
)
def test_a_granted_collection_is_planned(route, rag, granted, collection):
    planned = plan(route, rag, granted)
    assert (planned.collection if planned else None) == collection


@pytest.mark.parametrize(
    ("route", "rag", "granted", "code"),
    [
        (OPEN, {"collection": "b"}, frozenset({"a"}), "collection_not_allowed"),
        (OPEN, {"collection": "a"}, frozenset(), "collection_not_allowed"),  # []: no collection at all
        (DEFAULT_A, None, frozenset({"b"}), "collection_not_allowed"),  # the route's default is not the key's
        (DEFAULT_A, {}, frozenset({"b"}), "collection_not_allowed"),
        (DEFAULT_A, {"collection": "c"}, frozenset({"c"}), "rag_collection_not_allowed"),  # a grant never widens
    ],
)
def test_a_collection_outside_the_keys_grant_is_refused_before_retrieval(route, rag, granted, code):
    with pytest.raises(APIError) as refused:
        plan(route, rag, granted)
    assert (refused.value.status, refused.value.code, refused.value.type) == (403, code, "permission_error")
    if code == "collection_not_allowed" and not (rag or {}).get("collection"):
        assert '"rag": false' in refused.value.message  # how to answer without the route's default


def test_a_keys_grant_is_validated_like_a_routes():
    assert KeyCreate(name="k").allowed_collections is None
    assert KeyCreate(name="k", allowed_collections=[]).allowed_collections == []
    assert KeyUpdate(allowed_collections=["kb", "faq-2"]).allowed_collections == ["kb", "faq-2"]
    for bad in (["bad/name"], [""], ["x"] * 65, "kb"):
        with pytest.raises(ValidationError):
            KeyCreate(name="k", allowed_collections=bad)


@pytest.mark.parametrize("answer", ["announced", "chunked"])
async def test_a_search_answer_over_the_limit_is_the_retriever_failing(answer):
    """The search answer is read within the gateway's answer limit: one that announces more (content-length) or
    goes on is cut and its connection closed, and the retriever counts as unavailable (the route's
    ``on_retriever_error`` decides what the request gets)."""
    body = b'{"data": [' + b" " * (200 * 1024) + b"]}"

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        if answer == "announced":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for i in range(0, len(body), 8192):
                writer.write(b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192]))
            writer.write(b"0\r\n\r\n")
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with make_http_session() as http:
        client = RetrieverClient(http, url=url, token="t", timeout_s=5, max_answer_bytes=64 * 1024)
        with pytest.raises(RetrieverUnavailable, match="65536 bytes"):
            await client.search(collection="kb", query="q", top_k=2, filter=None, score_threshold=None, request_id="r")
    server.close()
