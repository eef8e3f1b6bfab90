"""The chat playground: the page only. The browser then talks to the gateway's public API like any client
(``/v1/chat/completions`` streamed, ``/v1/feedback``) with an API key it holds, so the playground exercises the
very path users take, and a rating lands on the request id that answer carried."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from llmops_gateway.console.backends import BackendError
from llmops_gateway.console.deps import ConsoleDep, SessionDep
from llmops_gateway.console.render import page
from llmops_gateway.deps import SessionDep as DbDep
from llmops_gateway.routing import service as routes_service

router = APIRouter(prefix="/console/playground", include_in_schema=False)


@router.get("")
async def playground(request: Request, _: SessionDep, console: ConsoleDep, db: DbDep) -> Response:
    routes = sorted(r.name for r in await routes_service.list_all(db))
    collections, collections_error = [], None
    if console.retriever.configured:
        try:
            body = await console.retriever.request("GET", "/v1/collections")
            collections = sorted(c["name"] for c in body.get("data", []))
        except BackendError as exc:
            collections_error = exc.message
    return page(
        request,
        "playground.html",
        title="Playground",
        routes=routes,
        collections=collections,
        rag_available=console.retriever.configured,
        collections_error=collections_error,
    )
