"""schemathesis against the gateway's own OpenAPI document: stateless, every operation (completions included,
answered by the test kit's fake upstream), and stateful, sequences along the document's links (a key created, read,
changed, revoked; a file uploaded, read, run as a batch, cancelled; a route read, written back, deleted): no 5xx,
every response conforms to the document, errors in the documented bodies. Bounded: 25 examples per operation, a few
short sequences, no shrinking (llmops_testkit.fuzz).
"""

import uuid
from dataclasses import dataclass

import pytest

from llmops_testkit.batch import chat_line, jsonl
from llmops_testkit.fuzz import assert_lifecycles, fuzz_openapi, unresolved_references
from llmops_testkit.gateway import Gateway, chat_body, variant
from llmops_testkit.processes import start_together
from llmops_testkit.spend import set_price

COMPLETIONS = ("/v1/chat/completions", "/v1/completions")
# Rules of one field about another, or about a file's content, that JSON Schema cannot state, so the document allows
# bodies these operations refuse (400 or 422): a route's fallbacks and rules must name its variants and its template
# must use {sources} (a configuration holds routes, and names keys that must exist); a self-hosted price must not
# derive (gpu_hour_cost / tokens_per_s) over the cap; an uploaded file's lines must be batch requests with no
# custom_id twice.
LENIENT = {
    ("PUT", "/admin/routes/{name}"),
    ("POST", "/admin/config/apply"),
    ("PUT", "/admin/prices/{variant}"),
    ("POST", "/v1/files"),
}


def lenient(operation) -> bool:
    return (operation.method.upper(), operation.path) in LENIENT


def kept_after_delete(operation) -> bool:
    # DELETE revokes a key (it stays listed and readable, with revoked_at); a deleted route keeps its history.
    return operation.path in ("/admin/keys/{key_id}", "/admin/routes/{name}/revisions")


@dataclass
class Fuzzed:
    """A gateway of its own (what the fuzzer creates, revokes and rewrites stays there), with its feedback service,
    a route to the fake upstream and a key."""

    gateway: Gateway
    upstream: object
    route: str
    key: str

    def headers(self, case) -> dict[str, str]:
        return {"authorization": f"Bearer {self.gateway.admin_token if case.path.startswith('/admin') else self.key}"}

    def prepare(self, case) -> None:
        if case.path in COMPLETIONS and isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = self.route  # else nearly every generated body stops at 404 model_not_found


@pytest.fixture(scope="module")
def fuzzed(make_gateway, make_feedback, llmops_state_dir, _fake_upstreams) -> Fuzzed:
    databases = {
        name: f"sqlite+aiosqlite:///{llmops_state_dir / f'fuzz-{name}-{uuid.uuid4().hex[:6]}.db'}"
        for name in ("gw", "fb")
    }
    feedback = make_feedback(sql_url=databases["fb"], start=False)
    gateway = make_gateway(sql_url=databases["gw"], **feedback.gateway_env(), start=False)
    start_together(feedback, gateway)
    route = gateway.put_route(variants=[variant("a", _fake_upstreams["alpha"])])
    _, key = gateway.create_key()
    return Fuzzed(gateway, _fake_upstreams["alpha"], route, key)


def test_every_operation_answers_within_its_document(fuzzed):
    run, failures = fuzz_openapi(
        f"{fuzzed.gateway.url}/openapi.json", headers=fuzzed.headers, prepare=fuzzed.prepare, lenient=lenient
    )
    assert run >= 10
    assert not unresolved_references(f"{fuzzed.gateway.url}/openapi.json")
    assert not failures, "\n\n".join(failures)


# Each lifecycle the document links (the paths of its operations), and its links, each to be followed to a 2xx
# answer at least once.
LIFECYCLES = {
    r"^/admin/keys": ("POST /admin/keys -> read", "POST /admin/keys -> update", "POST /admin/keys -> revoke"),
    r"^/admin/(teams|keys$)": (
        "POST /admin/teams -> read",
        "POST /admin/teams -> update",
        "POST /admin/teams -> add_key",
    ),
    r"^/admin/identities": ("POST /admin/identities -> revoke",),
    # Without the history (linked too): fewer links to choose from after a PUT, each followed more often.
    r"^/admin/routes(/\{name\})?$": (
        "GET /admin/routes -> read_first",
        "GET /admin/routes/{name} -> write_back",
        "PUT /admin/routes/{name} -> read",
        "PUT /admin/routes/{name} -> delete",
    ),
    r"^/admin/prices": (
        "GET /admin/prices -> history_of_first",
        "GET /admin/prices/{variant} -> write_back",
        "PUT /admin/prices/{variant} -> history",
    ),
    r"^/v1/(files|batches)": (
        "POST /v1/files -> read",
        "POST /v1/files -> content",
        "POST /v1/files -> delete",
        "POST /v1/files -> run_as_batch",
        "POST /v1/batches -> read",
        "POST /v1/batches -> cancel",
    ),
}


def test_linked_operations_answer_within_their_document(fuzzed):
    """Routes and prices the lists link to exist from the start, and an upload carries a batch file (its lines are
    no JSON Schema's to state), so the sequences go past the first 404 or 400."""
    for _ in range(3):
        fuzzed.gateway.put_route(variants=[variant("a", fuzzed.upstream)])
    set_price(fuzzed.gateway, f"v-{uuid.uuid4().hex[:6]}", input="1", output="2")

    def prepare(case) -> None:
        fuzzed.prepare(case)
        if case.path == "/v1/files" and case.method.upper() == "POST" and isinstance(case.body, dict):
            case.body["file"] = jsonl([chat_line("a", fuzzed.route), chat_line("b", fuzzed.route)])

    url = f"{fuzzed.gateway.url}/openapi.json"
    assert_lifecycles(
        url,
        LIFECYCLES,
        headers=fuzzed.headers,
        prepare=prepare,
        lenient=lenient,
        kept_after_delete=kept_after_delete,
        max_examples=6,
    )


@pytest.mark.parametrize(
    "path,body",
    [
        ("/admin/keys", {"name": "k", "limits": {"rpm": 10**24}}),  # was 500: a database integer overflow
        ("/admin/keys", {"name": "k", "expires_in_s": 440519065797}),  # was 500: a datetime overflow
        ("/admin/keys", {"name": "k", "limits": {"tpd": 2**31}}),
    ],
)
def test_what_the_fuzzer_found_is_a_422(gateway, path, body):
    with gateway.admin() as client:
        response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_token_count_beyond_what_parses_is_a_422_with_its_field(gateway, upstreams):
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route, max_tokens=10**30))
    assert response.status_code == 422 and response.json()["error"]["param"] == "max_tokens"
    assert not upstreams["alpha"].stats.requests


@pytest.mark.parametrize("path", ["/admin/spend", "/admin/audit"])
@pytest.mark.parametrize("since", ["999999w", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_a_since_the_document_allows_past_the_calendar_is_answered(gateway, path, since):
    """Were 500s (a datetime overflow) once the document stated what `since` takes: a time before 1970 counts from
    then, one past the calendar's end once moved to UTC from its end."""
    with gateway.admin() as client:
        response = client.get(path, params={"since": since})
    assert response.status_code == 200, response.text
    if path == "/admin/spend" and since != "9999-12-31T23:59:59-23:59":
        assert response.json()["since"].startswith("1970-01-01T00:00:00")
