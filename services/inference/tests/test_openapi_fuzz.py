"""schemathesis against the inference service's own OpenAPI document (not vLLM's), stateless, every operation, the
completions included, with the admin token (accepted everywhere): no 5xx, every response conforms to the document,
errors in the documented body. Bounded: a few derandomized examples per operation, no shrinking
(llmops_testkit.fuzz).

It runs against the session's inference service with its real vLLM: the app cannot be served without one (its
lifespan starts vLLM, and without it every completion and the model list answer 503, which the fuzzer rightly
counts as server errors). Completion bodies get the base model's name, so generated cases go past the service's
model check to vLLM, and vLLM's refusals come back through the service's error rewriting; a generated case never
names an adapter loaded by another test, so the fuzzer cannot unload one.
"""

from llmops_testkit.fuzz import fuzz_openapi, unresolved_references

COMPLETIONS = ("/v1/chat/completions", "/v1/completions")


def test_every_operation_answers_within_its_document(inference_service):
    headers = {"authorization": f"Bearer {inference_service.admin_token}"}

    def prepare(case) -> None:
        if case.path in COMPLETIONS and isinstance(case.body, dict):
            case.body["model"] = inference_service.base_model  # else every case stops at 404 model_not_found
            case.body["max_tokens"] = 4  # a case that happens to be a valid request generates briefly (CPU)

    def lenient(operation) -> bool:
        # Rules this document does not state: a completion body is any JSON object here, relayed to vLLM, whose own
        # document says what a valid one holds (its 400s come back in our error body, and are checked as such);
        # the path to load an adapter from must be a PEFT adapter directory on the service's disk.
        return (operation.method.upper(), operation.path) in {
            ("POST", "/v1/chat/completions"),
            ("POST", "/v1/completions"),
            ("POST", "/admin/adapters"),
        }

    run, failures = fuzz_openapi(
        f"{inference_service.url}/openapi.json",
        headers=lambda case: headers,
        prepare=prepare,
        lenient=lenient,
        max_examples=10,
    )
    assert run >= 5
    assert not unresolved_references(f"{inference_service.url}/openapi.json")
    assert not failures, "\n\n".join(failures)
