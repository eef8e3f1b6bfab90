"""Routes: variants with their weights and shares, fallbacks and RAG settings; editing a route's split, and its
fallbacks and RAG settings. Every change goes through ``routing.service.put`` (a revision, as from the API)."""

from urllib.parse import quote

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from llmops_gateway.admin import audit
from llmops_gateway.admin.auth import Identity
from llmops_gateway.console.backends import gateway_errors
from llmops_gateway.console.deps import AdminFormDep, SessionDep
from llmops_gateway.console.forms import errors_of, optional_float, optional_int
from llmops_gateway.console.render import page
from llmops_gateway.deps import RoutesDep
from llmops_gateway.deps import SessionDep as DbDep
from llmops_gateway.routing import service
from llmops_gateway.routing.models import Route
from llmops_gateway.routing.schemas import RouteSpec

RAG_ON_ERROR = ("fail", "answer_without_context")

router = APIRouter(prefix="/console/routes", include_in_schema=False)


def shares(route) -> dict[str, float]:
    total = sum(v.weight for v in route.variants)
    return {v.name: (v.weight / total if total else 0.0) for v in route.variants}


async def _routes_page(
    request: Request,
    db,
    *,
    status: int = 200,
    errors: dict | None = None,
    saved: str | None = None,
    what: str = "split",
) -> Response:
    routes = sorted((service.to_public(r) for r in await service.list_all(db)), key=lambda r: r.name)
    return page(
        request,
        "routes.html",
        status=status,
        title="Routes",
        routes=[(r, shares(r)) for r in routes],
        errors=errors or {},
        saved=saved,
        what=what if what in ("split", "settings") else "split",
        on_error_choices=RAG_ON_ERROR,
    )


@router.get("")
async def list_routes(
    request: Request, _: SessionDep, db: DbDep, saved: str | None = None, what: str = "split"
) -> Response:
    return await _routes_page(request, db, saved=saved, what=what)


@router.post("/{name:path}/split")
async def edit_split(
    name: str, request: Request, form: AdminFormDep, session: SessionDep, db: DbDep, routes: RoutesDep
) -> Response:
    """New weights for the route's variants; everything else of the route stays as it is."""
    async with gateway_errors():
        current = service.to_public(await service.get(db, name=name))
    try:
        weights = {
            v.name: optional_float(form, f"weight:{v.name}", label=f"Weight of {v.name}") for v in current.variants
        }
        document = current.model_dump(mode="json", exclude={"name", "updated_at"})
        for variant in document["variants"]:
            variant["weight"] = weights[variant["name"]]
        spec = RouteSpec.model_validate(document)  # the API's own rules: no negative weights, one positive
    except (ValidationError, ValueError) as exc:
        return await _routes_page(request, db, status=400, errors={name: errors_of(exc)})
    return await _save(name, spec, db, routes, session.identity, what="split")


def _fallbacks(text: str, current) -> list:
    """Names in order: a variant of the route by name, or one of its own fallback variants (kept whole)."""
    own = {f.name: f.model_dump(mode="json") for f in current.fallbacks if not isinstance(f, str)}
    names = {v.name for v in current.variants}
    out = []
    for name in (n.strip() for n in text.replace("\n", ",").split(",")):
        if not name:
            continue
        if name not in names and name not in own:
            raise ValueError(f"Fallbacks: {name!r} is neither a variant of this route nor one of its fallbacks")
        out.append(own.get(name, name))
    return out


def _rag(form, current) -> dict | None:
    """The route's RAG document with the form's fields set; the fields the form has none of stay as they are."""
    document = current.rag.model_dump(mode="json") if current.rag else None
    collection = (form.get("rag_collection") or "").strip() or None
    top_k = optional_int(form, "rag_top_k", label="Sources to retrieve") or 1
    on_error = form.get("rag_on_error") or "fail"
    if document is None and collection is None and top_k == 1 and on_error == "fail":
        return None  # nothing set: the route keeps per-request RAG with the defaults
    document = document or {}
    document.update(collection=collection, top_k=top_k, on_retriever_error=on_error)
    return document


@router.post("/{name:path}/settings")
async def edit_settings(
    name: str, request: Request, form: AdminFormDep, session: SessionDep, db: DbDep, routes: RoutesDep
) -> Response:
    """Fallbacks and RAG settings; the variants, their weights and the rules stay as they are."""
    async with gateway_errors():
        current = service.to_public(await service.get(db, name=name))
    try:
        document = current.model_dump(mode="json", exclude={"name", "updated_at"})
        document["fallbacks"] = _fallbacks(form.get("fallbacks") or "", current)
        document["rag"] = _rag(form, current)
        spec = RouteSpec.model_validate(document)  # the API's own rules: fallbacks name variants, top_k in range
    except (ValidationError, ValueError) as exc:
        return await _routes_page(request, db, status=400, errors={name: errors_of(exc)}, what="settings")
    return await _save(name, spec, db, routes, session.identity, what="settings")


async def _save(name: str, spec: RouteSpec, db, routes, identity: Identity, *, what: str) -> Response:
    """The one route-changing path (it records a revision, and the audit log an entry), then this replica's route
    cache is dropped."""
    await audit.stage(db, identity, "routes.put", Route, name)
    await service.put(db, name=name, spec=spec, actor=identity.id)
    routes.invalidate()
    return RedirectResponse(f"/console/routes?saved={quote(name)}&what={what}", status_code=303)
