"""The retriever's HTTP API on a real process with real embeddings, once per engine."""

import pytest


@pytest.fixture
def docs(retriever, collection_name, corpus):
    retriever.create_collection(collection_name, hybrid=True)
    documents = [{"id": corpus.FACT_ID, "text": corpus.FACT, "metadata": {"kind": "almanac", "year": 2021}}]
    for i, (doc_id, text) in enumerate(corpus.DISTRACTORS.items()):
        documents.append({"id": doc_id, "text": text, "metadata": {"kind": "guide", "year": 2010 + i}})
    retriever.ingest(collection_name, documents)
    return collection_name


def test_the_one_document_with_the_fact_comes_back_first(retriever, docs, corpus):
    for hybrid in (False, True):
        hits = retriever.search(docs, corpus.FACT_QUESTION, top_k=5, hybrid=hybrid)
        assert hits[0]["document_id"] == corpus.FACT_ID, [h["document_id"] for h in hits]
        assert "Odalys Quenterby" in hits[0]["text"]
        assert hits[0]["metadata"] == {"kind": "almanac", "year": 2021}
        assert len(hits) == 5


def test_filters_restrict_what_comes_back(retriever, docs, corpus):
    guide = {"must": [{"key": "metadata.kind", "match": {"value": "guide"}}]}
    guides = retriever.search(docs, corpus.FACT_QUESTION, top_k=20, filter=guide)
    assert corpus.FACT_ID not in {h["document_id"] for h in guides} and len(guides) == len(corpus.DISTRACTORS)
    recent = retriever.search(
        docs, "harbour", top_k=20, filter={"must": [{"key": "metadata.year", "range": {"gte": 2023}}]}
    )
    assert {h["document_id"] for h in recent} == {"library", "weather"}  # 2023, 2024
    none = retriever.search(docs, "harbour", filter={"must_not": [{"key": "metadata.year", "range": {"gt": 0}}]})
    assert none == []
    # Dense similarities to the question: the fact 0.74, the next document 0.56.
    strict = retriever.search(docs, corpus.FACT_QUESTION, top_k=20, score_threshold=0.65, hybrid=False)
    assert [h["document_id"] for h in strict] == [corpus.FACT_ID]
    with retriever.reader() as client:
        not_a_field = {"must": [{"key": "text", "match": {"value": "x"}}]}
        bad = client.post(f"/v1/collections/{docs}/search", json={"query": "x", "filter": not_a_field})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_hybrid_search_finds_exact_rare_terms(retriever, docs, corpus):
    documents = {doc_id: text for doc_id, (_, text) in corpus.RARE_TERMS.items()} | corpus.LOOK_ALIKES
    retriever.ingest(docs, [{"id": doc_id, "text": text} for doc_id, text in documents.items()])
    for doc_id, (term, _) in corpus.RARE_TERMS.items():
        hybrid = retriever.search(docs, term, top_k=3, hybrid=True)
        assert hybrid[0]["document_id"] == doc_id, [h["document_id"] for h in hybrid]
        dense = retriever.search(docs, term, top_k=3, hybrid=False)
        assert dense[0]["document_id"] != doc_id  # what hybrid search is for: dense similarity alone misses it


def test_reingest_replaces_chunks_and_delete_removes_them(retriever, collection_name):
    retriever.create_collection(collection_name, chunk_size=32, chunk_overlap=8)
    long_text = " ".join(f"Paragraph {i} describes the tidal mill number {i} and its wheel." for i in range(20))
    first = retriever.ingest(collection_name, [{"id": "mills", "text": long_text}])
    chunks = first["documents"][0]["chunks"]
    assert chunks > 4 and first["documents"][0]["removed_chunks"] == 0
    with retriever.admin() as client:

        def counts() -> tuple[int, int]:
            described = client.get(f"/v1/collections/{collection_name}").json()
            return described["points_count"], described["documents_count"]

        assert counts() == (chunks, 1)  # many chunks, one document
        again = retriever.ingest(collection_name, [{"id": "mills", "text": long_text}])
        assert again["documents"][0] == {"id": "mills", "chunks": chunks, "removed_chunks": 0}
        assert counts() == (chunks, 1)
        retriever.ingest(collection_name, [{"id": "pond", "text": "The mill pond freezes in January."}])
        assert counts() == (chunks + 1, 2)
        assert client.delete(f"/v1/collections/{collection_name}/documents/pond").status_code == 204

        changed = long_text.replace("tidal mill", "windmill")
        retriever.ingest(collection_name, [{"id": "mills", "text": changed}])
        doc = client.get(f"/v1/collections/{collection_name}/documents/mills", params={"chunks": "true"}).json()
        assert doc["chunks"] == len(doc["chunk_texts"]) and all("windmill" in c["text"] for c in doc["chunk_texts"])
        assert [c["index"] for c in doc["chunk_texts"]] == list(range(doc["chunks"]))

        shrunk = retriever.ingest(collection_name, [{"id": "mills", "text": "Only one mill is left: the windmill."}])
        assert shrunk["documents"][0]["chunks"] == 1 and shrunk["documents"][0]["removed_chunks"] == doc["chunks"] - 1
        assert counts() == (1, 1)
        assert (
            retriever.search(collection_name, "tidal mill wheel", top_k=5)[0]["text"]
            == "Only one mill is left: the windmill."
        )

        assert client.delete(f"/v1/collections/{collection_name}/documents/mills").status_code == 204
        assert counts() == (0, 0)
        gone = client.get(f"/v1/collections/{collection_name}/documents/mills")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "document_not_found"
        assert client.delete(f"/v1/collections/{collection_name}/documents/mills").status_code == 404


def test_unnamed_documents_are_identified_by_their_text(retriever, collection_name):
    retriever.create_collection(collection_name)
    one = retriever.ingest(collection_name, [{"text": "Kelp forests shelter young fish."}])
    two = retriever.ingest(collection_name, [{"text": "Kelp forests shelter young fish."}])
    assert one["documents"][0]["id"] == two["documents"][0]["id"]
    with retriever.admin() as client:
        assert client.get(f"/v1/collections/{collection_name}").json()["points_count"] == 1


def test_metadata_update_is_seen_by_filters(retriever, docs):
    with retriever.admin() as client:
        response = client.patch(
            f"/v1/collections/{docs}/documents/bakery", json={"metadata": {"kind": "shop", "year": None}}
        )
        assert response.status_code == 200, response.text
        assert response.json()["metadata"] == {"kind": "shop"}
        bad = client.patch(f"/v1/collections/{docs}/documents/bakery", json={"metadata": {"bad key!": 1}})
        assert bad.status_code == 422
        assert client.patch(f"/v1/collections/{docs}/documents/nope", json={"metadata": {}}).status_code == 404
    shops = retriever.search(
        docs, "bread", top_k=20, filter={"must": [{"key": "metadata.kind", "match": {"value": "shop"}}]}
    )
    assert [h["document_id"] for h in shops] == ["bakery"] and shops[0]["metadata"] == {"kind": "shop"}
    guides = retriever.search(
        docs, "bread", top_k=20, filter={"must": [{"key": "metadata.kind", "match": {"value": "guide"}}]}
    )
    assert "bakery" not in {h["document_id"] for h in guides}


def test_collections_are_listed_described_and_deleted(retriever, collection_name):
    created = retriever.create_collection(collection_name, distance="dot", chunk_size=64, chunk_overlap=16)
    assert (created["embedding_model"], created["dimension"], created["hybrid"]) == ("all-MiniLM-L6-v2", 384, False)
    with retriever.reader() as reader:
        assert collection_name in {c["name"] for c in reader.get("/v1/collections").json()["data"]}
        described = reader.get(f"/v1/collections/{collection_name}").json()
        assert described["points_count"] == 0 and described["distance"] == "dot" and described["chunk_size"] == 64
        assert described["documents_count"] == 0
        assert reader.delete(f"/v1/collections/{collection_name}").status_code == 401  # reading is all it may do
    with retriever.admin() as admin:
        assert admin.post("/v1/collections", json={"name": collection_name}).status_code == 409
        assert admin.delete(f"/v1/collections/{collection_name}").status_code == 204
        assert admin.get(f"/v1/collections/{collection_name}").status_code == 404
        assert admin.delete(f"/v1/collections/{collection_name}").status_code == 404
