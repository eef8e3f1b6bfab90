"""schemathesis against the retriever's OpenAPI document, stateless, every operation, with the admin token
(accepted everywhere): no 5xx, every response conforms to the document, errors in the documented body. Bounded: a
few derandomized examples per operation (an ingest embeds on CPU), no shrinking (llmops_testkit.fuzz).

A retriever of its own (Qdrant Edge): what the fuzzer creates and deletes stays there. Names the document cannot
know (an existing collection, a configured embedding model) are filled in by ``prepare``, so generated cases reach
past the lookups; collections named by ``{name}`` stay generated, so create and delete cannot remove the one used.
"""

import httpx

from llmops_testkit.fuzz import fuzz_openapi

COLLECTION, MODEL = "fuzz", "all-MiniLM-L6-v2"


def test_every_operation_answers_within_its_document(make_retriever):
    retriever = make_retriever(store="edge")
    headers = {"authorization": f"Bearer {retriever.admin_token}"}
    created = httpx.post(f"{retriever.url}/v1/collections", json={"name": COLLECTION}, headers=headers, timeout=30)
    assert created.status_code == 201, created.text

    def prepare(case) -> None:
        if case.path_parameters and "collection" in case.path_parameters:
            case.path_parameters["collection"] = COLLECTION
        if isinstance(case.body, dict) and ("embedding_model" in case.body or case.path == "/v1/embeddings"):
            case.body["embedding_model" if case.path == "/v1/collections" else "model"] = MODEL

    def lenient(operation) -> bool:
        # Rules JSON Schema does not state here: a new collection's name must not be taken (409); a filter's keys
        # name the collection's metadata; an upload's filename needs a supported extension (415); an embedding input
        # holds no empty string; a document batch is read by the view (read_json), which refuses an empty body.
        return (operation.method.upper(), operation.path) in {
            ("POST", "/v1/collections"),
            ("POST", "/v1/collections/{collection}/search"),
            ("POST", "/v1/collections/{collection}/files"),
            ("POST", "/v1/collections/{collection}/documents"),
            ("POST", "/v1/embeddings"),
        }

    run, failures = fuzz_openapi(
        f"{retriever.url}/openapi.json", headers=lambda case: headers, prepare=prepare, lenient=lenient, max_examples=6
    )
    assert run >= 5
    assert not failures, "\n\n".join(failures)
