"""Keys: list with each key's usage (requests, tokens, spend over the last 30 days, from the spend records),
create with limits, routes and RAG collections (the secret is shown once, on the page the creation answers), revoke."""

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from llmops_gateway.admin import audit
from llmops_gateway.console.backends import gateway_errors
from llmops_gateway.console.deps import FormDep, SessionDep
from llmops_gateway.console.forms import comma_list, errors_of, optional_int, optional_list
from llmops_gateway.console.render import page
from llmops_gateway.deps import AuthenticatorDep, SettingsDep
from llmops_gateway.deps import SessionDep as DbDep
from llmops_gateway.keys import service
from llmops_gateway.keys.models import ApiKey
from llmops_gateway.keys.schemas import KeyCreate
from llmops_gateway.routing import service as routes_service
from llmops_gateway.spend import service as spend_service
from llmops_gateway.spend.schemas import SpendBy

USAGE_DAYS = 30

router = APIRouter(prefix="/console/keys", include_in_schema=False)


def _state(key) -> str:
    if key.revoked_at:
        return "revoked"
    if key.expires_at and key.expires_at <= datetime.now(UTC):
        return "expired"
    return "active"


async def usage_by_key(db, *, currency: str) -> dict:
    """Each key's spend group (requests, tokens, cost) over the last ``USAGE_DAYS`` days, by key id."""
    since = datetime.now(UTC) - timedelta(days=USAGE_DAYS)
    report = await spend_service.report(db, since=since, currency=currency, by=SpendBy.key)
    return {g.group: g for g in report.groups}


async def _keys_page(
    request: Request,
    db,
    settings,
    *,
    status: int = 200,
    errors: list[str] | None = None,
    form: FormData | None = None,
) -> Response:
    team = request.state.console_session.identity.team  # a team-admin sees its own team's keys only
    keys = [service.to_public(k) for k in await service.list_all(db) if team is None or k.team == team]
    keys.sort(key=lambda k: k.created_at, reverse=True)
    route_names = sorted(r.name for r in await routes_service.list_all(db))
    usage = await usage_by_key(db, currency=settings.currency)
    rows = [(k, _state(k), usage.get(k.id)) for k in keys]
    return page(
        request,
        "keys.html",
        status=status,
        title="Keys",
        rows=rows,
        routes=route_names,
        currency=settings.currency,
        usage_days=USAGE_DAYS,
        team=team,
        errors=errors or [],
        form=form or {},
    )


@router.get("")
async def list_keys(request: Request, _: SessionDep, db: DbDep, settings: SettingsDep) -> Response:
    return await _keys_page(request, db, settings)


@router.post("")
async def create_key(
    request: Request,
    form: FormDep,
    session: SessionDep,
    db: DbDep,
    authenticator: AuthenticatorDep,
    settings: SettingsDep,
) -> Response:
    identity = session.identity
    try:
        days = optional_int(form, "expires_in_days", label="Expires in (days)")
        data = KeyCreate(
            name=(form.get("name") or "").strip(),
            limits={name: optional_int(form, name, label=name.upper()) for name in ("rpm", "tpm", "tpd")},
            allowed_routes=optional_list(form.getlist("allowed_routes")),
            allowed_collections=comma_list(form, "allowed_collections"),
            expires_in_s=days * 86400 if days else None,
            team=identity.team or (form.get("team") or "").strip() or None,  # a team-admin's keys are its team's
        )
    except (ValidationError, ValueError) as exc:
        return await _keys_page(request, db, settings, status=400, errors=errors_of(exc), form=form)
    async with gateway_errors():  # the admin API's rules: a team-admin acts on its team; a viewer on nothing
        identity.require_team(data.team)
        await audit.stage(db, identity, "keys.create", ApiKey, None)
        key, secret = await service.create(db, data=data, key_secret=authenticator.key_secret)
    # The only page that ever holds the secret; sent with no-store like every console page.
    return page(request, "key_created.html", status=201, title="Key created", key=service.to_public(key), secret=secret)


@router.post("/{key_id}/revoke")
async def revoke_key(
    key_id: str, _: FormDep, session: SessionDep, db: DbDep, authenticator: AuthenticatorDep
) -> Response:
    async with gateway_errors():
        session.identity.require_team((await service.get(db, key_id=key_id)).team)
        await audit.stage(db, session.identity, "keys.revoke", ApiKey, key_id)
        await service.revoke(db, key_id=key_id)
    authenticator.forget()
    return RedirectResponse("/console/keys", status_code=303)
