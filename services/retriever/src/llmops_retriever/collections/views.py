from fastapi import APIRouter
from starlette.responses import Response

from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import link, links
from llmops_retriever.collections import service
from llmops_retriever.collections.schemas import CollectionCreate, CollectionList, CollectionPublic
from llmops_retriever.deps import AdminDep, ReaderDep, StateDep

router = APIRouter(
    prefix="/v1/collections", tags=["collections"], responses=ERROR_RESPONSES
)  # every error in the documented body


_NAME = "$response.body#/name"


@router.post(
    "",
    status_code=201,
    openapi_extra=links(
        201,
        describe=link("get", "/v1/collections/{name}", name=_NAME),
        delete=link("delete", "/v1/collections/{name}", name=_NAME),
        add_documents=link("post", "/v1/collections/{collection}/documents", collection=_NAME),
        search=link("post", "/v1/collections/{collection}/search", collection=_NAME),
    ),
)
async def create(data: CollectionCreate, _: AdminDep, state: StateDep) -> CollectionPublic:
    return service.to_public(await service.create(state, data=data))


@router.get("")
async def list_collections(_: ReaderDep, state: StateDep) -> CollectionList:
    return CollectionList(data=[service.to_public(spec) for spec in await state.store.list_collections()])


@router.get("/{name}")
async def describe(name: str, _: ReaderDep, state: StateDep) -> CollectionPublic:
    """The collection with its point (chunk) count, its document count and index state."""
    return await service.describe(state, name=name)


@router.delete("/{name}", status_code=204)
async def delete(name: str, _: AdminDep, state: StateDep) -> Response:
    await service.delete(state, name=name)
    return Response(status_code=204)


@router.post("/{name}/index")
async def build_index(name: str, _: AdminDep, state: StateDep) -> CollectionPublic:
    """Builds the vector index now and waits for it (Qdrant Edge builds it in the background by itself)."""
    return await service.build_index(state, name=name)
