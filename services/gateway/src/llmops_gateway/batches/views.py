"""OpenAI's Batches API: ``/v1/batches``."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import RESPONSE_ID, link, links
from llmops_gateway.batches import engine_lines, service
from llmops_gateway.batches.engine_schemas import AdmitRequest, AdmitResponse, SettleRequest
from llmops_gateway.batches.schemas import BatchCreate, BatchList, BatchObject
from llmops_gateway.deps import PricesDep, RoutesDep, SessionDep, SettingsDep
from llmops_gateway.files.views import FilesDep, KeyDep

router = APIRouter(tags=["batches"], responses=ERROR_RESPONSES)


@router.post(
    "/v1/batches",
    openapi_extra=links(
        200,
        read=link("get", "/v1/batches/{batch_id}", batch_id=RESPONSE_ID),
        cancel=link("post", "/v1/batches/{batch_id}/cancel", batch_id=RESPONSE_ID),
    ),
)
async def create_batch(
    data: BatchCreate,
    request: Request,
    key: KeyDep,
    session: SessionDep,
    store: FilesDep,
    routes: RoutesDep,
    prices: PricesDep,
    settings: SettingsDep,
) -> BatchObject:
    limits = request.app.state.files_limits
    # Embedding lines find their route as /v1/embeddings does: a route, else one of the retriever's models.
    resolve = request.app.state.embeddings.route_spec if data.endpoint == "/v1/embeddings" else routes.get
    return await service.create(
        session,
        store,
        key=key,
        data=data,
        shard_lines=limits.shard_lines,
        default_max_tokens=limits.default_max_tokens,
        resolve=resolve,
        prices=prices,
        currency=settings.currency,
    )


@router.get("/v1/batches")
async def list_batches(
    key: KeyDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 20, after: str | None = None
) -> BatchList:
    data, more = await service.list_for(session, key_id=key.id, limit=limit, after=after)
    return BatchList(
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=more
    )


@router.get("/v1/batches/{batch_id}")
async def get_batch(batch_id: str, key: KeyDep, session: SessionDep) -> BatchObject:
    return await service.get(session, key_id=key.id, batch_id=batch_id)


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, key: KeyDep, session: SessionDep) -> BatchObject:
    return await service.cancel(session, key_id=key.id, batch_id=batch_id)


# The batch workers' own engine (``engine_lines``): their token only, as the Authorization bearer, checked before
# the body is read.
def _batch_workers_only(request: Request) -> None:
    request.app.state.pipeline.check_batch_token(request.headers.get("authorization"))


internal = APIRouter(
    prefix="/internal/batches",
    tags=["internal: batch workers"],
    dependencies=[Depends(_batch_workers_only)],
    responses=ERROR_RESPONSES,
)


@internal.post("/{batch_id}/admit")
async def admit_engine_lines(batch_id: str, data: AdmitRequest, request: Request) -> AdmitResponse:
    return await engine_lines.admit(
        request.app.state.pipeline,
        authorization=request.headers.get("authorization"),
        batch_id=batch_id[:64],
        data=data,
    )


@internal.post("/{batch_id}/settle")
async def settle_engine_lines(batch_id: str, data: SettleRequest, request: Request) -> dict:
    return {"settled": engine_lines.settle(request.app.state.pipeline, batch_id=batch_id[:64], data=data)}
