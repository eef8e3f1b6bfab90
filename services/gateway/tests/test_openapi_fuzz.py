"""schemathesis against the gateway's own OpenAPI document, stateless, every operation (completions included,
answered by the test kit's fake upstream): no 5xx, every response conforms to the document, errors in the
documented bodies. Bounded: 25 examples per operation, no shrinking (llmops_testkit.fuzz).
"""

import uuid

import pytest

from llmops_testkit.fuzz import fuzz_openapi
from llmops_testkit.gateway import chat_body, variant

COMPLETIONS = ("/v1/chat/completions", "/v1/completions")


def test_every_operation_answers_within_its_document(make_gateway, make_feedback, llmops_state_dir, _fake_upstreams):
    # A gateway of its own (what the fuzzer creates, revokes and rewrites stays here), with its feedback service.
    databases = {
        name: f"sqlite+aiosqlite:///{llmops_state_dir / f'fuzz-{name}-{uuid.uuid4().hex[:6]}.db'}"
        for name in ("gw", "fb")
    }
    feedback = make_feedback(sql_url=databases["fb"])
    gateway = make_gateway(sql_url=databases["gw"], **feedback.gateway_env())
    route = gateway.put_route(variants=[variant("a", _fake_upstreams["alpha"])])
    _, key = gateway.create_key()

    def prepare(case) -> None:
        if case.path in COMPLETIONS and isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = route  # else nearly every generated body stops at 404 model_not_found

    def headers(case) -> dict[str, str]:
        return {"authorization": f"Bearer {gateway.admin_token if case.path.startswith('/admin') else key}"}

    def lenient(operation) -> bool:
        # A route's fallbacks must name its variants, its template must use {sources}: rules of one field about
        # another that JSON Schema cannot state, so the document allows bodies PUT refuses (with 422).
        # Likewise, not stated in the document yet (left for the next round of issue 22): embeddings refuse empty
        # strings; a file's purpose and a batch's endpoint and window take one of a few values; budgets and prices are
        # decimals sent as strings; `since` takes a duration or an ISO time; only a team-admin identity has a team.
        return (operation.method.upper(), operation.path) in {
            ("PUT", "/admin/routes/{name}"),
            ("POST", "/v1/embeddings"),
            ("POST", "/v1/files"),
            ("POST", "/v1/batches"),
            ("POST", "/admin/keys"),
            ("PATCH", "/admin/keys/{key_id}"),
            ("POST", "/admin/teams"),
            ("PATCH", "/admin/teams/{name}"),
            ("PUT", "/admin/prices/{variant}"),
            ("GET", "/admin/spend"),
            ("POST", "/admin/identities"),
            ("GET", "/admin/audit"),
            # A configuration holds routes (their rules above) and names keys that must exist.
            ("POST", "/admin/config/apply"),
        }

    run, failures = fuzz_openapi(f"{gateway.url}/openapi.json", headers=headers, prepare=prepare, lenient=lenient)
    assert run >= 10
    assert not failures, "\n\n".join(failures)


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
