"""Files of each supported type, and bad input: each gets its status and an OpenAI-format error, never a 500."""

import httpx
import orjson
import pytest


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with a text line per entry (Helvetica), built by hand with a correct xref table."""
    text = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) '" for line in lines) + " ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode()),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


FILES = {
    "notes.txt": ("text/plain", b"The tide gauge at Kelmouth pier was calibrated by Ilsabet Norrow."),
    "guide.md": (
        "text/markdown",
        b"# Kelmouth\n\n## Ferries\n\nThe night ferry to Strand Isle is called *Moth Queen*.",
    ),
    "page.html": (
        "text/html",
        (
            b"<html><head><title>Kelmouth</title><style>p{color:red}</style><script>var secret='hidden';</script></head>"
            b"<body><h1>Kelmouth</h1><p>The smokehouse cures herring over juniper wood.</p></body></html>"
        ),
    ),
    "report.pdf": ("application/pdf", minimal_pdf(["Kelmouth harbour report.", "The crane lifts nine tonnes."])),
}


def upload(client, collection: str, filename: str, data: bytes, content_type: str, **params):
    return client.post(
        f"/v1/collections/{collection}/files",
        params={"filename": filename, **params},
        content=data,
        headers={"content-type": content_type},
    )


def test_each_file_type_is_extracted_and_searchable(retriever, collection_name):
    retriever.create_collection(collection_name)
    with retriever.admin() as client:
        for name, (content_type, data) in FILES.items():
            response = upload(
                client, collection_name, name, data, content_type, metadata=orjson.dumps({"type": name[-3:]}).decode()
            )
            assert response.status_code == 200, response.text
            assert response.json()["documents"][0]["id"] == name
        page = client.get(f"/v1/collections/{collection_name}/documents/page.html", params={"chunks": "true"}).json()
    text = page["chunk_texts"][0]["text"]
    assert "juniper" in text and "secret" not in text and "color" not in text  # scripts and styles are not text
    assert page["source"] == "page.html" and page["metadata"] == {"type": "tml"}
    for query, expected in [
        ("Who calibrated the tide gauge?", "notes.txt"),
        ("What is the night ferry called?", "guide.md"),
        ("What wood is herring smoked over?", "page.html"),
        ("How much can the crane lift?", "report.pdf"),
    ]:
        assert retriever.search(collection_name, query, top_k=1)[0]["document_id"] == expected, query


def error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert set(body) >= {"message", "type", "code"} and body["message"]
    if code:
        assert body["code"] == code
    return body


def test_bad_input_gets_a_clear_error(retriever, collection_name):
    retriever.create_collection(collection_name)
    docs_path = f"/v1/collections/{collection_name}/documents"
    with retriever.admin() as client:
        error(client.post(docs_path, json={"documents": [{"text": " \n\t "}]}), 422, "empty_document")
        error(client.post(docs_path, json={"documents": []}), 422, "invalid_request")
        error(client.post(docs_path, content=b"{not json", headers={"content-type": "application/json"}), 422)
        error(client.post(docs_path, json={"documents": [{"text": "x", "metadata": {"a b": 1}}]}), 422)
        error(client.post(docs_path, json={"documents": [{"id": "a/b", "text": "x"}]}), 422)
        twice = {"documents": [{"id": "same", "text": "one"}, {"id": "same", "text": "two"}]}
        error(client.post(docs_path, json=twice), 422, "duplicate_document")
        huge = {"documents": [{"text": "word " * 2_000_000}]}  # over the JSON body limit (8 MiB)
        error(client.post(docs_path, json=huge), 413, "request_too_large")

        error(upload(client, collection_name, "x.exe", b"MZ", "application/octet-stream"), 415, "unsupported_file_type")
        error(upload(client, collection_name, "data.csv", b"a,b", "text/csv"), 415, "unsupported_file_type")
        too_big = b"x" * (int(retriever.env["RETRIEVER_MAX_UPLOAD_BYTES"]) + 1)
        error(upload(client, collection_name, "big.txt", too_big, "text/plain"), 413, "request_too_large")
        error(
            upload(client, collection_name, "broken.pdf", b"%PDF-1.4 garbage", "application/pdf"),
            422,
            "unreadable_file",
        )
        error(upload(client, collection_name, "latin1.txt", "café".encode("latin-1"), "text/plain"), 415)
        error(upload(client, collection_name, "empty.md", b"   \n", "text/markdown"), 422, "empty_document")
        error(upload(client, collection_name, "n.txt", b"x", "text/plain", metadata="[1, 2]"), 422)

        for method, path, body in [
            ("POST", "/v1/collections/nope/documents", {"documents": [{"text": "x"}]}),
            ("POST", "/v1/collections/nope/search", {"query": "x"}),
            ("GET", "/v1/collections/nope", None),
            ("DELETE", "/v1/collections/nope", None),
            ("GET", "/v1/collections/nope/documents/d", None),
            ("PATCH", "/v1/collections/nope/documents/d", {"metadata": {}}),
            ("DELETE", "/v1/collections/nope/documents/d", None),
            ("POST", "/v1/collections/nope/index", None),
        ]:
            error(client.request(method, path, json=body), 404, "collection_not_found")
        error(upload(client, "nope", "n.txt", b"text", "text/plain"), 404, "collection_not_found")

        error(client.post("/v1/collections", json={"name": "x", "dimension": 768}), 422, "dimension_mismatch")
        error(
            client.post("/v1/collections", json={"name": "x", "embedding_model": "bert-huge"}),
            422,
            "unknown_embedding_model",
        )
        error(client.post("/v1/collections", json={"name": "x", "chunk_size": 1000}), 422, "chunk_too_large")
        error(client.post("/v1/collections", json={"name": "bad/name"}), 422)
        error(client.post(f"/v1/collections/{collection_name}/search", json={"query": "   "}), 422)
        error(client.post(f"/v1/collections/{collection_name}/search", json={"query": "x", "top_k": 0}), 422)
        error(client.post(f"/v1/collections/{collection_name}/search", json={"query": "x", "hybrid": True}), 422)


@pytest.mark.parametrize("who", ["nobody", "reader", "wrong"])
def test_writes_need_the_admin_token(retriever, collection_name, who):
    retriever.create_collection(collection_name)
    token = {"nobody": None, "reader": retriever.read_token, "wrong": "x" * 32}[who]
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=retriever.url, headers=headers, timeout=30) as client:
        error(client.post(f"/v1/collections/{collection_name}/documents", json={"documents": [{"text": "x"}]}), 401)
        error(client.post("/v1/collections", json={"name": "other"}), 401)
        error(client.delete(f"/v1/collections/{collection_name}"), 401)
        searched = client.post(f"/v1/collections/{collection_name}/search", json={"query": "x"})
        assert searched.status_code == (200 if who == "reader" else 401)
