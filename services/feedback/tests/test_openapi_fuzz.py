"""schemathesis against the feedback service's own OpenAPI document, stateless, every operation, with the admin
token (accepted everywhere): no 5xx, every response conforms to the document, errors in the documented body.
Bounded: 25 derandomized examples per operation, no shrinking (llmops_testkit.fuzz).
"""

import uuid

from llmops_testkit.fuzz import fuzz_openapi
from llmops_testkit.gateway import variant


def test_every_operation_answers_within_its_document(make_feedback, make_gateway, llmops_state_dir, _fake_upstreams):
    """A service of its own (what the fuzzer ingests, rates and opens stays here) with a real gateway, whose routes
    experiments and retraining policies name; no trainer (a policy is stored, no job is started)."""
    databases = {
        name: f"sqlite+aiosqlite:///{llmops_state_dir / f'fuzz-{name}-{uuid.uuid4().hex[:6]}.db'}"
        for name in ("gw", "fb")
    }
    gateway = make_gateway(sql_url=databases["gw"])
    gateway.put_route("chat", variants=[variant("a", _fake_upstreams["alpha"]), variant("b", _fake_upstreams["beta"])])
    feedback = make_feedback(
        sql_url=databases["fb"], FEEDBACK_GATEWAY_URL=gateway.url, FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token
    )

    def lenient(operation) -> bool:
        # Rules the document does not state: since before until (until defaults to now), between two parameters;
        # an experiment's policy is an object whose fields and ranges ExperimentPolicy checks (documented in prose).
        # Likewise: a page cursor must come from an earlier page; an eval set takes items or from_feedback, exactly
        # one; a comparison needs a judge route when the service has none configured; a retraining policy carries
        # an experiment policy (checked as above) and a gate with an eval set or a replay, exactly one.
        return operation.path == "/v1/quality" or (operation.method.upper(), operation.path) in {
            ("POST", "/v1/experiments"),
            ("PUT", "/v1/retraining/{route}"),
            ("POST", "/v1/config/retraining/validate"),
            ("GET", "/v1/requests"),
            ("POST", "/v1/evaluations/sets"),
            ("POST", "/v1/evaluations/comparisons"),
        }

    run, failures = fuzz_openapi(
        f"{feedback.url}/openapi.json",
        headers=lambda case: {"authorization": f"Bearer {feedback.admin_token}"},
        lenient=lenient,
    )
    assert run >= 10
    assert not failures, "\n\n".join(failures)


def test_a_route_name_is_escaped_on_its_way_to_the_gateway(make_feedback, make_gateway, llmops_state_dir):
    """Was a 500 (a control character is no valid URL); a name with a path in it must not reach another endpoint."""
    gateway = make_gateway(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'esc-gw-{uuid.uuid4().hex[:6]}.db'}")
    feedback = make_feedback(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'esc-fb-{uuid.uuid4().hex[:6]}.db'}",
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
    )
    with feedback.admin() as client:
        control = client.put("/v1/retraining/bad%1Dname", json={"champion": "a", "model_name": "m"})
        # From a body (the name pattern allows "/" and "."): unescaped, this was GET /admin/keys on the gateway.
        traversal = client.post("/v1/experiments", json={"route": "a/../../keys", "champion": "a", "challenger": "b"})
    for response in (control, traversal):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "route_not_found"
