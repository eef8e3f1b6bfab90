"""OpenAI's Files API for a key's batch inputs and its batches' outputs: ``/v1/files``."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.openapi import RESPONSE_ID, link, links, text_answer
from llmops_gateway.deps import AuthenticatorDep, SessionDep, get_files
from llmops_gateway.files import service
from llmops_gateway.files.schemas import PURPOSES, FileDeleted, FileList, FileObject, to_public
from llmops_gateway.files.store import ObjectStore
from llmops_gateway.keys.auth import AuthenticatedKey

router = APIRouter(tags=["files"], responses=ERROR_RESPONSES)
FilesDep = Annotated[ObjectStore, Depends(get_files)]


async def _key(request: Request, authenticator: AuthenticatorDep) -> AuthenticatedKey:
    return await authenticator.authenticate(request.headers.get("authorization"), request.scope)


KeyDep = Annotated[AuthenticatedKey, Depends(_key)]

_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "additionalProperties": False,  # more than 4 fields is a 400 (a form's size is bounded)
                    "properties": {"file": {"type": "string", "format": "binary"}, "purpose": {"enum": list(PURPOSES)}},
                }
            }
        },
    }
}


_FILE = "/v1/files/{file_id}"
_UPLOAD_LINKS = links(
    200,
    read=link("get", _FILE, file_id=RESPONSE_ID),
    content=link("get", f"{_FILE}/content", file_id=RESPONSE_ID),
    delete=link("delete", _FILE, file_id=RESPONSE_ID),
    run_as_batch=link("post", "/v1/batches", body={"input_file_id": RESPONSE_ID}),
)


@router.post("/v1/files", openapi_extra=_UPLOAD_DOC | _UPLOAD_LINKS)
async def upload(request: Request, key: KeyDep, session: SessionDep, store: FilesDep) -> FileObject:
    """A batch input file (JSONL, ``purpose=batch``): checked line by line; over the size limit 413."""
    limit = request.app.state.files_limits
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit.max_bytes + 64 * 1024:  # + the form's framing
        raise APIError(413, f"file over {limit.max_bytes} bytes", code="file_too_large")
    form = await request.form(max_files=1, max_fields=4)
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise APIError(400, "a multipart field 'file' is required", code="invalid_request", param="file")
    if not isinstance(purpose, str):
        raise APIError(400, "a multipart field 'purpose' is required", code="invalid_request", param="purpose")
    data = await upload.read(limit.max_bytes + 1)
    await form.close()
    if len(data) > limit.max_bytes:
        raise APIError(413, f"file over {limit.max_bytes} bytes", code="file_too_large")
    row = await service.create(
        session,
        store,
        key_id=key.id,
        filename=upload.filename or "upload.jsonl",
        purpose=purpose,
        data=data,
        max_lines=limit.max_lines,
    )
    return to_public(row)


@router.get("/v1/files")
async def list_files(
    key: KeyDep,
    session: SessionDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> FileList:
    rows, more = await service.list_for(session, key_id=key.id, purpose=purpose, limit=limit, after=after, order=order)
    data = [to_public(row) for row in rows]
    return FileList(
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=more
    )


@router.get("/v1/files/{file_id}")
async def get_file(file_id: str, key: KeyDep, session: SessionDep) -> FileObject:
    return to_public(await service.get(session, key_id=key.id, file_id=file_id))


@router.get(
    "/v1/files/{file_id}/content",
    response_class=Response,
    responses=text_answer("application/jsonl", "the file as it was uploaded or written"),
)
async def file_content(file_id: str, key: KeyDep, session: SessionDep, store: FilesDep) -> Response:
    data = await service.content(session, store, key_id=key.id, file_id=file_id)
    return Response(data, media_type="application/jsonl")


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, key: KeyDep, session: SessionDep, store: FilesDep) -> FileDeleted:
    await service.delete(session, store, key_id=key.id, file_id=file_id)
    return FileDeleted(id=file_id)
