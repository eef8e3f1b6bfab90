"""Collections: each with its document and chunk counts and embedding model, and an upload form that sends one
file (.txt .md .html .pdf) to the retriever's admin API, which parses, chunks and embeds it as one document."""

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from llmops_gateway.admin.schemas import Role
from llmops_gateway.console.backends import BackendError
from llmops_gateway.console.deps import CSRF_FIELD, ConsoleDep, CsrfRejected, PlatformSessionDep, RoleRefused
from llmops_gateway.console.render import page
from llmops_gateway.console.sessions import tokens_match

router = APIRouter(prefix="/console/collections", include_in_schema=False)

# The retriever has its own, usually smaller, limit (RETRIEVER_MAX_UPLOAD_BYTES) and says so; this one only keeps
# a runaway upload from filling the gateway's temporary files.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


@router.get("")
async def list_collections(
    request: Request, _: PlatformSessionDep, console: ConsoleDep, uploaded: str | None = None, chunks: int | None = None
) -> Response:
    body = await console.retriever.request("GET", "/v1/collections")
    names = sorted(c["name"] for c in body.get("data", []))
    described = await asyncio.gather(
        *(console.retriever.request("GET", f"/v1/collections/{quote(name, safe='')}") for name in names)
    )
    return page(
        request,
        "collections.html",
        title="Collections",
        collections=described,
        can_upload=console.retriever_admin.configured,
        uploaded=uploaded,
        chunks=chunks,
    )


@router.post("/upload")
async def upload(request: Request, session: PlatformSessionDep, console: ConsoleDep) -> Response:
    if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES:
        raise BackendError("console", f"the upload is larger than {MAX_UPLOAD_BYTES // 2**20} MiB", status=413)
    form = await request.form(max_files=1, max_fields=10)
    if not tokens_match(form.get(CSRF_FIELD), session.csrf):
        raise CsrfRejected()
    if session.identity.role is not Role.admin:
        raise RoleRefused(f"The {session.identity.role} role may not upload.")
    if not console.retriever_admin.configured:
        raise BackendError("retriever", "uploads need GATEWAY_RETRIEVER_ADMIN_TOKEN on this gateway", status=503)
    collection, file = form.get("collection"), form.get("file")
    if not isinstance(collection, str) or not collection:
        raise BackendError("console", "choose a collection", status=400)
    if not isinstance(file, UploadFile) or not file.filename:
        raise BackendError("console", "choose a file to upload", status=400)
    document_id = form.get("document_id")
    result = await console.retriever_admin.request(
        "POST",
        f"/v1/collections/{quote(collection, safe='')}/files",
        params={"filename": file.filename, "document_id": document_id if isinstance(document_id, str) else None},
        data=await file.read(),
        content_type=file.content_type or "application/octet-stream",
    )
    uploaded = ", ".join(d["id"] for d in result.get("documents", [])) or file.filename
    target = f"/console/collections?uploaded={quote(uploaded, safe='')}&chunks={int(result.get('chunks', 0))}"
    return RedirectResponse(target, status_code=303)
