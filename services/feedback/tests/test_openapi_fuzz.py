"""schemathesis against the feedback service's own OpenAPI document, with the admin token (accepted everywhere):
stateless, every operation, and stateful, along the document's links (a request logged, read, rated; an experiment
opened, read, decided; a retraining policy set, read, deleted; an eval set stored, exported): no 5xx, every response
conforms to the document, errors in the documented body. Bounded: 25 derandomized examples per operation and a few
short sequences, no shrinking (llmops_testkit.fuzz).
"""

import uuid

import pytest

from llmops_testkit.feedback import evaluation_env
from llmops_testkit.fuzz import assert_lifecycles, fuzz_openapi, unresolved_references
from llmops_testkit.gateway import variant

# Rules the document does not state: since before until (until defaults to now), between two parameters; an
# experiment's policy is an object whose fields and ranges ExperimentPolicy checks (documented in prose; its steps
# increase strictly, an order between array items). Likewise: a page cursor must come from an earlier page; an eval
# set from feedback needs some feedback to build it from; a comparison needs a judge route when the service has none
# configured; a retraining policy carries an experiment policy (checked as above).
LENIENT = {
    ("POST", "/v1/experiments"),
    ("PUT", "/v1/retraining/{route}"),
    ("POST", "/v1/config/retraining/validate"),
    ("GET", "/v1/requests"),
    ("POST", "/v1/evaluations/sets"),
    ("POST", "/v1/evaluations/comparisons"),
}


def lenient(operation) -> bool:
    return operation.path == "/v1/quality" or (operation.method.upper(), operation.path) in LENIENT


@pytest.fixture(scope="module")
def fuzzed(make_feedback, make_gateway, llmops_state_dir, _fake_upstreams, redis_url):
    """A service of its own (what the fuzzer ingests, rates and opens stays here) with a real gateway, whose route
    "chat" (variants a and b) experiments and retraining policies name, and evaluation on a Redis queue of its own
    (no worker: a comparison stays queued); no trainer (a policy is stored, no job is started)."""
    databases = {
        name: f"sqlite+aiosqlite:///{llmops_state_dir / f'fuzz-{name}-{uuid.uuid4().hex[:6]}.db'}"
        for name in ("gw", "fb")
    }
    gateway = make_gateway(sql_url=databases["gw"])
    gateway.put_route("chat", variants=[variant("a", _fake_upstreams["alpha"]), variant("b", _fake_upstreams["beta"])])
    return make_feedback(
        sql_url=databases["fb"],
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        **evaluation_env(redis_url=redis_url),
    )


def test_every_operation_answers_within_its_document(fuzzed):
    url = f"{fuzzed.url}/openapi.json"
    run, failures = fuzz_openapi(
        url, headers=lambda case: {"authorization": f"Bearer {fuzzed.admin_token}"}, lenient=lenient
    )
    assert not unresolved_references(url)
    assert run >= 10
    assert not failures, "\n\n".join(failures)


# Each lifecycle the document links (the paths of its operations), and its links, each to be followed to a 2xx
# answer at least once.
LIFECYCLES = {
    r"^/v1/(requests|feedback)": (
        "POST /v1/requests -> read_first",
        "POST /v1/requests -> rate_first",
        "POST /v1/feedback -> read_rated",
    ),
    r"^/v1/experiments": ("POST /v1/experiments -> read", "POST /v1/experiments -> decide"),
    r"^/v1/retraining": ("PUT /v1/retraining/{route} -> read", "PUT /v1/retraining/{route} -> delete"),
    r"^/v1/evaluations/sets": ("POST /v1/evaluations/sets -> export",),
}


def _known_names(case) -> None:
    """What the document cannot know: the gateway's route and variants, and a valid policy (its rules are above)."""
    body = case.body if isinstance(case.body, dict) else {}
    if case.path == "/v1/experiments" and case.method.upper() == "POST":
        body.update(route="chat", champion="a", challenger="b", policy={})
    elif case.path == "/v1/retraining/{route}" and case.method.upper() == "PUT":
        case.path_parameters["route"] = "chat"
        body.update(champion="a", experiment={}, gate=None)
    elif case.path == "/v1/evaluations/sets" and case.method.upper() == "POST" and not body.get("items"):
        body.update(items=[{"question": "What is 2 + 2?", "reference": "4"}], from_feedback=None)


def test_linked_operations_answer_within_their_document(fuzzed):
    assert_lifecycles(
        f"{fuzzed.url}/openapi.json",
        LIFECYCLES,
        headers=lambda case: {"authorization": f"Bearer {fuzzed.admin_token}"},
        prepare=_known_names,
        lenient=lenient,
        max_examples=5,
    )


def test_a_route_name_is_escaped_on_its_way_to_the_gateway(fuzzed):
    """Was a 500 (a control character is no valid URL); a name with a path in it must not reach another endpoint.
    (The fuzzed service will do: its gateway knows one route, "chat".)"""
    with fuzzed.admin() as client:
        control = client.put("/v1/retraining/bad%1Dname", json={"champion": "a", "model_name": "m"})
        # From a body (the name pattern allows "/" and "."): unescaped, this was GET /admin/keys on the gateway.
        traversal = client.post("/v1/experiments", json={"route": "a/../../keys", "champion": "a", "challenger": "b"})
    for response in (control, traversal):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "route_not_found"
