"""schemathesis against the retriever's OpenAPI document, with the admin token (accepted everywhere): stateless,
every operation, and stateful, along the document's links (a collection created, described, filled, searched,
deleted; a document ingested, read, changed, deleted): no 5xx, every response conforms to the document, errors in
the documented body. Bounded: a few examples per operation and a few short sequences (an ingest embeds on CPU), no
shrinking (llmops_testkit.fuzz).

A retriever of the module's own (Qdrant Edge): what the fuzzer creates and deletes stays there. Names the document cannot
know (an existing collection, a configured embedding model) are filled in by ``prepare``, so generated cases reach
past the lookups; collections named by ``{name}`` stay generated, so create and delete cannot remove the one used.
"""

import httpx
import pytest

from llmops_testkit.fuzz import assert_lifecycles, fuzz_openapi, unresolved_references

COLLECTION, MODEL = "fuzz", "all-MiniLM-L6-v2"

# Rules JSON Schema does not state here: a new collection's sizes must fit its model (dimension, chunk_size), and
# chunk_overlap stays below chunk_size, as an embedding's dimensions must be its model's; a filter's keys name the
# collection's metadata, and hybrid search needs a collection made for it; an upload's filename needs a supported
# extension (415) and its bytes that kind's content; the documents of one request need distinct ids (given, or their
# text's hash). Not stated yet: metadata integers fit in 64 bits (at any depth: a recursive schema of any JSON value).
LENIENT = {
    ("POST", "/v1/collections"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/collections/{collection}/search"),
    ("POST", "/v1/collections/{collection}/files"),
    ("POST", "/v1/collections/{collection}/documents"),
    ("PATCH", "/v1/collections/{collection}/documents/{document_id}"),
}


def lenient(operation) -> bool:
    return (operation.method.upper(), operation.path) in LENIENT


@pytest.fixture(scope="module")
def retriever_and_headers(make_retriever):
    """The module's retriever, with the collection ``COLLECTION`` that operations on documents are pointed at."""
    retriever = make_retriever(store="edge")
    headers = {"authorization": f"Bearer {retriever.admin_token}"}
    created = httpx.post(f"{retriever.url}/v1/collections", json={"name": COLLECTION}, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    return retriever, headers


def test_every_operation_answers_within_its_document(retriever_and_headers):
    retriever, headers = retriever_and_headers

    def prepare(case) -> None:
        if case.path_parameters and "collection" in case.path_parameters:
            case.path_parameters["collection"] = COLLECTION
        if isinstance(case.body, dict) and ("embedding_model" in case.body or case.path == "/v1/embeddings"):
            case.body["embedding_model" if case.path == "/v1/collections" else "model"] = MODEL

    run, failures = fuzz_openapi(
        f"{retriever.url}/openapi.json", headers=lambda case: headers, prepare=prepare, lenient=lenient, max_examples=6
    )
    assert run >= 5
    assert not unresolved_references(f"{retriever.url}/openapi.json")
    assert not failures, "\n\n".join(failures)


# Each lifecycle the document links (the paths of its operations), and its links, each to be followed to a 2xx
# answer at least once: a collection's, and a document's in a collection that exists from the start.
LIFECYCLES = {
    r"^/v1/collections(/\{name\}|/\{collection\}/(documents|search))?$": (
        "POST /v1/collections -> describe",
        "POST /v1/collections -> delete",
        "POST /v1/collections -> add_documents",
        "POST /v1/collections -> search",
    ),
    r"^/v1/collections/\{collection\}/documents": (
        "POST /v1/collections/{collection}/documents -> read_first",
        "POST /v1/collections/{collection}/documents -> update_first",
        "POST /v1/collections/{collection}/documents -> delete_first",
    ),
}


def test_linked_operations_answer_within_their_document(retriever_and_headers):
    """New collections take the service's model and their sizes from it (the document cannot know which model is
    configured, nor its dimension and token limit), and documents start in a collection that exists, so sequences go
    past the first step."""
    retriever, headers = retriever_and_headers

    def prepare(case) -> None:
        if case.path == "/v1/collections" and isinstance(case.body, dict):
            case.body["embedding_model"] = MODEL
            for field in ("dimension", "chunk_size", "chunk_overlap"):
                case.body.pop(field, None)
        elif case.path.endswith("/documents") and isinstance(case.body, dict) and case.body.get("documents"):
            case.body["documents"] = case.body["documents"][:2]  # each is embedded on CPU: a few are enough here

    def prepare_documents(case) -> None:
        prepare(case)
        if case.path == "/v1/collections/{collection}/documents" and case.method.upper() == "POST":
            case.path_parameters["collection"] = COLLECTION

    assert_lifecycles(
        f"{retriever.url}/openapi.json",
        LIFECYCLES,
        headers=lambda case: headers,
        prepare_for=lambda paths: prepare if paths.endswith("?$") else prepare_documents,
        lenient=lenient,
        max_examples=3,
        steps=5,
    )


def test_metadata_beyond_64_bit_integers_is_a_422(retriever_and_headers):
    """Was a 500 (orjson cannot encode the integer), found by the stateful run."""
    retriever, headers = retriever_and_headers
    with httpx.Client(base_url=retriever.url, headers=headers, timeout=60) as client:
        assert client.post("/v1/collections", json={"name": "big-ints"}).status_code == 201
        docs = "/v1/collections/big-ints/documents"
        refused = client.post(docs, json={"documents": [{"id": "d", "text": "t", "metadata": {"n": 2**70}}]})
        assert client.post(docs, json={"documents": [{"id": "d", "text": "t"}]}).status_code == 200
        patched = client.patch(f"{docs}/d", json={"metadata": {"n": [{"m": -(2**70)}]}})
    for response in (refused, patched):
        assert response.status_code == 422, response.text
        assert "64 bits" in response.json()["error"]["message"]
