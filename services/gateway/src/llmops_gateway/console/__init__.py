"""The web console and chat playground, served by the gateway at ``/console/`` (see the README's "Console")."""

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse

from llmops_gateway.console.backends import BackendError, OpenServiceClient, ServiceClient
from llmops_gateway.console.deps import CsrfRejected, RoleRefused, SignInRequired
from llmops_gateway.console.render import page
from llmops_gateway.console.sessions import SessionStore
from llmops_gateway.console.state import ConsoleState
from llmops_gateway.console.views import (
    auth,
    collections,
    experiments,
    feedback,
    keys,
    overview,
    playground,
    routes,
    spend,
    training,
)
from llmops_gateway.keys.lockout import FailedAuthLimiter

__all__ = ["ConsoleState", "install", "make_state"]


def make_state(settings, *, redis, http, admin_token: str, sign_in_limiter: FailedAuthLimiter) -> ConsoleState:
    return ConsoleState(
        sessions=SessionStore(
            redis, prefix=settings.redis_key_prefix, ttl_s=settings.console_session_ttl_s, admin_token=admin_token
        ),
        feedback=ServiceClient(
            http, service="feedback", url=settings.feedback_url, token=settings.feedback_admin_token
        ),
        retriever=ServiceClient(http, service="retriever", url=settings.retriever_url, token=settings.retriever_token),
        retriever_admin=ServiceClient(
            http,
            service="retriever",
            url=settings.retriever_url,
            token=settings.retriever_admin_token,
            timeout_s=settings.retriever_upload_timeout_s,
        ),
        trainer=ServiceClient(http, service="trainer", url=settings.trainer_url, token=settings.trainer_admin_token),
        registry=OpenServiceClient(http, service="MLflow", url=settings.mlflow_url, token=None),
        secure_cookie=settings.console_secure_cookie,
        sign_in_limiter=sign_in_limiter,
        client_ip_header=settings.console_client_ip_header,
    )


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=Path(__file__).parent / "static"), name="console-static")
    for module in (auth, overview, playground, keys, routes, feedback, experiments, training, collections, spend):
        app.include_router(module.router)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired):
        return RedirectResponse(f"/console/login?next={exc.next_path}", status_code=303)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected):
        message = "This form did not carry this session's security token (CSRF). Reload the page and try again."
        return page(request, "error.html", status=403, title="Form refused", message=message)

    @app.exception_handler(RoleRefused)
    async def _role(request: Request, exc: RoleRefused):
        return page(request, "error.html", status=403, title="Not for this role", message=exc.message)

    @app.exception_handler(BackendError)
    async def _backend(request: Request, exc: BackendError):
        status = exc.status if 400 <= exc.status < 600 and exc.status != 500 else 502
        return page(
            request,
            "error.html",
            status=status,
            title=f"{exc.service}: {exc.message}",
            message=f"The {exc.service} service could not answer this page: {exc.message}.",
        )
