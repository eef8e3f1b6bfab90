import asyncio

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.openapi import json_body, link, links
from llmops_common.requests import read_body
from llmops_retriever.collections.service import get_spec
from llmops_retriever.deps import AdminDep, ReaderDep, StateDep, read_json
from llmops_retriever.documents import service
from llmops_retriever.documents.extract import extract_text, file_kind
from llmops_retriever.documents.schemas import (
    DOCUMENT_ID_PATTERN,
    DocumentBatch,
    DocumentIn,
    DocumentPublic,
    IngestResult,
    MetadataPatch,
)

router = APIRouter(
    prefix="/v1/collections/{collection}", tags=["documents"], responses=ERROR_RESPONSES
)  # every error in the documented body


_DOCUMENT = "/v1/collections/{collection}/documents/{document_id}"
_FIRST = {"collection": "$request.path.collection", "document_id": "$response.body#/documents/0/id"}
_INGEST_LINKS = links(
    200,
    read_first=link("get", _DOCUMENT, **_FIRST),
    update_first=link("patch", _DOCUMENT, **_FIRST),
    delete_first=link("delete", _DOCUMENT, **_FIRST),
)


@router.post("/documents", openapi_extra=json_body(DocumentBatch) | _INGEST_LINKS)
async def ingest_documents(collection: str, request: Request, _: AdminDep, state: StateDep) -> IngestResult:
    """Chunks, embeds and stores documents. A document id seen before is replaced (its old chunks go)."""
    batch = await read_json(request, DocumentBatch, max_bytes=state.settings.max_body_bytes)
    if len(batch.documents) > state.settings.max_documents_per_request:
        limit = state.settings.max_documents_per_request
        raise APIError(413, f"at most {limit} documents per request", code="too_many_documents")
    docs = [service.Doc(d.id, d.text, d.metadata) for d in batch.documents]
    return await service.ingest(state, collection=collection, documents=docs)


@router.post(
    "/files",
    openapi_extra={
        "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
async def ingest_file(
    collection: str,
    request: Request,
    _: AdminDep,
    state: StateDep,
    filename: str = Query(
        min_length=1, max_length=256, description="its extension picks the parser (.txt .md .html .pdf)"
    ),
    document_id: str | None = Query(default=None, pattern=DOCUMENT_ID_PATTERN, description="default: the file name"),
    metadata: str | None = Query(default=None, max_length=16_384, description="a JSON object"),
) -> IngestResult:
    """One file as the raw request body (``curl --data-binary @report.pdf``); its text becomes one document."""
    await get_spec(state, name=collection)  # 404, 415 and 422 before reading a byte of the upload
    kind = file_kind(filename, request.headers.get("content-type"))
    name = filename.rsplit("/", 1)[-1]
    try:
        doc = DocumentIn(id=document_id or name, text="", metadata=orjson.loads(metadata) if metadata else {})
    except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
        raise APIError(
            422, f"invalid document id or metadata (a JSON object): {exc}"[:500], code="invalid_request"
        ) from None
    data = await read_body(request, max_bytes=state.settings.max_upload_bytes)
    text = await asyncio.to_thread(extract_text, data, kind)
    return await service.ingest(
        state, collection=collection, documents=[service.Doc(doc.id, text, doc.metadata, source=name)]
    )


@router.get("/documents/{document_id}")
async def get_document(
    collection: str, document_id: str, _: ReaderDep, state: StateDep, chunks: bool = False
) -> DocumentPublic:
    return await service.get(state, collection=collection, document_id=document_id, with_chunks=chunks)


@router.patch("/documents/{document_id}")
async def update_metadata(
    collection: str, document_id: str, data: MetadataPatch, _: AdminDep, state: StateDep
) -> DocumentPublic:
    """Merges ``metadata`` into the document's (JSON merge patch: null removes a key), on every chunk."""
    return await service.update_metadata(state, collection=collection, document_id=document_id, patch=data.metadata)


@router.delete("/documents/{document_id}", status_code=204)
async def delete_document(collection: str, document_id: str, _: AdminDep, state: StateDep) -> Response:
    await service.delete(state, collection=collection, document_id=document_id)
    return Response(status_code=204)
