from fastapi import APIRouter

from llmops_common.contracts.search import SearchResponse
from llmops_common.errors import ERROR_RESPONSES
from llmops_retriever.deps import ReaderDep, StateDep
from llmops_retriever.search import service
from llmops_retriever.search.schemas import SearchRequest

router = APIRouter(
    prefix="/v1/collections/{collection}", tags=["search"], responses=ERROR_RESPONSES
)  # every error in the documented body


@router.post("/search")
async def search(collection: str, request: SearchRequest, _: ReaderDep, state: StateDep) -> SearchResponse:
    """The ``top_k`` chunks nearest to ``query``, filtered by payload; hybrid collections fuse BM25 in (RRF)."""
    return await service.search(state, collection=collection, request=request)
