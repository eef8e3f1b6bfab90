"""The console's dependencies: who is signed in (and what its role lets it see), and forms that carry the session's
CSRF token."""

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from redis.exceptions import RedisError
from starlette.datastructures import FormData

from llmops_gateway.admin.auth import PLATFORM, is_active
from llmops_gateway.admin.schemas import Role
from llmops_gateway.console.backends import BackendError
from llmops_gateway.console.sessions import ConsoleSession, tokens_match
from llmops_gateway.console.state import ConsoleState

SESSION_COOKIE = "llmops_console"
CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024  # every console form is small; the playground talks to /v1 directly


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class CsrfRejected(Exception):
    pass


class RoleRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def get_console(request: Request) -> ConsoleState:
    return request.app.state.console


ConsoleDep = Annotated[ConsoleState, Depends(get_console)]


async def current_session(request: Request, console: ConsoleDep) -> ConsoleSession:
    try:
        session = await console.sessions.get(request.cookies.get(SESSION_COOKIE))
    except RedisError:
        raise BackendError("redis", "unreachable: console sessions live there") from None
    if session is not None and session.identity.id != PLATFORM.id:
        async with request.app.state.gateway.sessions() as db:  # a revoked identity is signed out at once
            if not await is_active(db, identity_id=session.identity.id):
                session = None
    if session is None:
        target = request.url.path if request.method == "GET" else "/console/"
        raise SignInRequired(quote(target))
    request.state.console_session = session  # the page renders its CSRF token into forms
    return session


SessionDep = Annotated[ConsoleSession, Depends(current_session)]


async def read_form(request: Request) -> FormData:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise BackendError("console", "form too large", status=413)
    return await request.form(max_files=0, max_fields=200)


async def checked_form(request: Request, session: SessionDep) -> FormData:
    """The posted form, once its CSRF token is the session's: a form from another site is refused (403)."""
    form = await read_form(request)
    if not tokens_match(form.get(CSRF_FIELD), session.csrf):
        raise CsrfRejected()
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


async def platform_session(session: SessionDep) -> ConsoleSession:
    """Pages of what every team shares (experiments, training, collections): not a team-admin's. Their data has no
    team to narrow it to, so showing a part of it would be showing another team's."""
    if session.identity.role is Role.team_admin:
        raise RoleRefused(
            "Experiments, training jobs and collections are shared by every team: a platform admin or viewer "
            "reads them. A team-admin sees its own team's keys, spend and requests (the Feedback page)."
        )
    return session


PlatformSessionDep = Annotated[ConsoleSession, Depends(platform_session)]


async def admin_form(form: FormDep, session: SessionDep) -> FormData:
    """A form that changes the platform (routes, experiments, training, collections): the admin role only."""
    if session.identity.role is not Role.admin:
        raise RoleRefused(f"The {session.identity.role} role may not change this.")
    return form


AdminFormDep = Annotated[FormData, Depends(admin_form)]
