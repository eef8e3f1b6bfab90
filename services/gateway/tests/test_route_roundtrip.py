"""What ``PUT /admin/routes/{name}`` accepts, ``GET`` reads back the same, and neither answers 5xx (schemathesis found
bodies that PUT took and then failed the output model, so PUT and GET answered 500)."""

import random
import uuid

import httpx
import pytest

from llmops_gateway.routing.schemas import RoutePublic, RouteSpec

VARIANT = {"name": "a", "upstream": "http://127.0.0.1:9/v1", "model": "m"}


@pytest.fixture
def admin(gateway):
    with gateway.admin() as client:
        yield client


def _put_then_get(admin: httpx.Client, body: dict | bytes) -> tuple[httpx.Response, httpx.Response | None]:
    name = f"rt-{uuid.uuid4().hex[:10]}"
    if isinstance(body, bytes):
        put = admin.put(f"/admin/routes/{name}", content=body, headers={"content-type": "application/json"})
    else:
        put = admin.put(f"/admin/routes/{name}", json=body)
    assert put.status_code < 500, put.text
    if put.status_code != 200:
        assert put.status_code == 422 and put.json()["error"]["type"] == "invalid_request_error", put.text
        return put, None
    got = admin.get(f"/admin/routes/{name}")
    assert got.status_code == 200, got.text
    assert got.json() == put.json()
    listed = admin.get("/admin/routes")
    assert listed.status_code == 200, listed.text
    assert got.json() in listed.json()["data"]
    return put, got


@pytest.mark.parametrize(
    "allowed",
    [
        pytest.param([""], id="one-empty-string"),
        pytest.param(["", ""], id="empty-strings"),
        pytest.param(["kb", " "], id="a-blank"),
        pytest.param(["-starts-with-a-dash"], id="not-a-collection-name"),
    ],
)
def test_allowed_collections_that_are_no_collection_names_are_422(admin, allowed):
    put, _ = _put_then_get(admin, {"variants": [VARIANT], "rag": {"allowed_collections": allowed}})
    assert put.status_code == 422 and put.json()["error"]["param"].startswith("rag.allowed_collections")


def test_a_full_allowed_list_besides_the_collection_reads_back_unchanged(admin):
    """The route's own collection was once prepended to the list, which then broke the list's length limit."""
    allowed = [f"c{i}" for i in range(64)]
    put, got = _put_then_get(
        admin, {"variants": [VARIANT], "rag": {"collection": "kb", "allowed_collections": allowed}}
    )
    assert put.status_code == 200, put.text
    assert got.json()["rag"]["collection"] == "kb" and got.json()["rag"]["allowed_collections"] == allowed
    rag = RoutePublic.model_validate(got.json()).rag
    assert rag.may_use("kb") and rag.may_use("c63") and not rag.may_use("other")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"variants": [{"name": "a", "upstream": "http://h/v1", "model": "m", "weight": Infinity}]}'),
        pytest.param(
            b'{"variants": [{"name": "a", "upstream": "http://h/v1", "model": "m"}], "rag": {"score_threshold": NaN}}'
        ),
    ],
    ids=["infinite-weight", "nan-threshold"],
)
def test_non_finite_numbers_are_refused(admin, raw):
    put, _ = _put_then_get(admin, raw)
    assert put.status_code in (400, 422)


# --- a sweep of generated bodies: most valid, some not; none may answer 5xx, every accepted one reads back ---


def _name(rng: random.Random, alphabet: str = "abcXYZ09._:/@-") -> str:
    first = rng.choice("aZ9")
    return first + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def _collection(rng: random.Random) -> str:
    return rng.choice(["kb", "docs", "a-b_c", "Z9", "", " ", "x" * 64, "x" * 65, "-no", "ok" * 10])


def _variant(rng: random.Random, name: str) -> dict:
    variant = {
        "name": name,
        "upstream": rng.choice(["http://127.0.0.1:9/v1", "https://h.example/v1/", "http://[::1]:8/", "http://h"]),
        "model": rng.choice(["m", "org/model:tag", "é" * 3, "x" * 256]),
        "weight": rng.choice([0, 0.5, 1, 3, 1e9]),
    }
    if rng.random() < 0.2:
        variant["api_key_env"] = rng.choice(["OPENAI_API_KEY", "K_1"])
    return variant


def _rag(rng: random.Random) -> dict:
    rag: dict = {}
    if rng.random() < 0.6:
        rag["collection"] = _collection(rng)
    if rng.random() < 0.6:
        rag["allowed_collections"] = [_collection(rng) for _ in range(rng.choice([0, 1, 3, 63, 64, 65]))]
    if rng.random() < 0.4:
        rag["top_k"] = rng.choice([1, 4, 20, 21, 0])
    if rng.random() < 0.3:
        rag["filter"] = {"must": [{"key": "lang", "match": {"value": "en"}}]}
    if rng.random() < 0.3:
        rag["score_threshold"] = rng.choice([0.2, -1.0, 1e300])
    if rng.random() < 0.3:
        rag["template"] = rng.choice(
            ["grounded-v1", "context-first-v1", {"version": "mine-1", "system": "Use {sources}."}]
        )
    if rng.random() < 0.3:
        rag["on_retriever_error"] = rng.choice(["fail", "answer_without_context"])
    if rng.random() < 0.3:
        rag["max_context_chars"] = rng.choice([200, 6000, 200_000])
    return rag


def _route_body(rng: random.Random) -> dict:
    names = list(dict.fromkeys(_name(rng) for _ in range(rng.randint(1, 4))))
    body: dict = {"variants": [_variant(rng, n) for n in names]}
    if rng.random() < 0.5:
        body["sticky"] = rng.random() < 0.5
    if rng.random() < 0.4:
        body["fallbacks"] = [rng.choice(names), _variant(rng, "fb-" + _name(rng))][: rng.randint(1, 2)]
    if rng.random() < 0.4:
        body["limits"] = {k: rng.choice([1, 60, 10**9]) for k in rng.sample(["rpm", "tpm", "tpd"], rng.randint(0, 3))}
    if rng.random() < 0.7:
        body["rag"] = _rag(rng)
    return body


def test_generated_route_bodies_round_trip_without_5xx(admin):
    rng = random.Random(22)  # fixed: a failure reproduces
    outcomes = {200: 0, 422: 0}
    for _ in range(60):
        body = _route_body(rng)
        put, _ = _put_then_get(admin, body)
        outcomes[put.status_code] += 1
        # The gateway's answer agrees with the model it validates with, both ways.
        try:
            RouteSpec.model_validate(body)
            expected = 200
        except ValueError:
            expected = 422
        assert put.status_code == expected, (body, put.text)
    assert outcomes[200] >= 10 and outcomes[422] >= 5, outcomes  # the sweep covered both sides


def test_a_stored_route_that_no_longer_validates_does_not_take_the_others_down():
    """Routes stored before a constraint was tightened: the table serves the rest and logs the one."""
    from datetime import UTC, datetime

    from llmops_gateway.routing.models import Route
    from llmops_gateway.routing.service import _valid_routes

    now = datetime.now(UTC)
    good = RouteSpec(variants=[VARIANT]).model_dump(mode="json")
    stale = {**good, "rag": {"allowed_collections": [""]}}
    routes = _valid_routes(
        [Route(name="good", spec=good, updated_at=now), Route(name="stale", spec=stale, updated_at=now)]
    )
    assert list(routes) == ["good"]
