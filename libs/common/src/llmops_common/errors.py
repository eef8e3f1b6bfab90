"""Errors in the OpenAI error body ``{"error": {"message", "type", "code"}}``, for every service."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmops_common.responses import OrjsonResponse

try:  # the "sql" extra: services without a SQL store do not have it
    from sqlalchemy import exc as sa_exc
except ImportError:  # pragma: no cover - depends on the installed extras
    sa_exc = None

logger = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


# The error body as OpenAPI documents it: every operation answers errors with it (``ERROR_RESPONSES``), so a client
# (and schemathesis) can check any error it gets against the document.
ERROR_BODY_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}
ERROR_RESPONSES: dict = {
    "default": {
        "description": 'An error, in the OpenAI error body {"error": {"message", "type", "code", "param"}}',
        "content": {"application/json": {"schema": ERROR_BODY_SCHEMA}},
    }
}


class APIError(Exception):
    """An error a client should see. Raise it from views or service functions."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or _TYPES.get(status, "api_error" if status < 500 else "server_error")
        self.param = param
        self.headers = headers


def error_body(message: str, *, type: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


def error_response(error: APIError) -> OrjsonResponse:
    """The one rendering of an error a client sees, for every service and path."""
    return OrjsonResponse(
        error_body(error.message, type=error.type, code=error.code, param=error.param),
        status_code=error.status,
        headers=error.headers,
    )


def internal_error_response() -> OrjsonResponse:
    """What a client sees of an unexpected error: never a traceback (the log has it)."""
    return OrjsonResponse(error_body("internal error", type="server_error", code="internal_error"), status_code=500)


def validation_error(
    errors: list[dict], *, status: int = 422, code: str = "invalid_request", prefix: tuple = ()
) -> APIError:
    """The one way pydantic's or FastAPI's validation errors become an ``APIError``: the first few problems in the
    message, the first one's location (under ``prefix``, without FastAPI's leading ``body``) as ``param``."""
    parts, param = [], None
    for err in errors[:5]:
        loc = ".".join(str(p) for p in (*prefix, *err.get("loc", ())) if p != "body")
        param = param or loc or None
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return APIError(status, "; ".join(parts) or "invalid request", code=code, param=param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> OrjsonResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> OrjsonResponse:
        return error_response(validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        status = exc.status_code
        return OrjsonResponse(
            error_body(str(exc.detail), type=_TYPES.get(status, "api_error"), code=None),
            status_code=status,
            headers=getattr(exc, "headers", None),
        )

    if sa_exc is not None:
        _install_database_errors(app)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> OrjsonResponse:
        logger.exception("unhandled error")
        return internal_error_response()


# SQLSTATEs of a server that is going away or not there yet, which the asyncpg dialect reports as a plain
# ``DBAPIError`` (not an ``OperationalError``): connection exceptions (class 08), "terminating connection due to
# administrator command" and crash shutdowns (57P01, 57P02), "the database system is starting up" (57P03), and too
# many connections (53300) while clients reconnect all at once.
_OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def database_outage(exc: BaseException) -> bool:
    """Whether a database error means the server is unavailable (retry later), not a bug in the statement."""
    if isinstance(exc, ConnectionError) or (sa_exc is not None and isinstance(exc, sa_exc.TimeoutError)):
        return True
    if sa_exc is None or not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or ""
    return sqlstate.startswith("08") or sqlstate in _OUTAGE_SQLSTATES


def log_failed_round(log: logging.Logger, message: str, exc: BaseException) -> None:
    """A background loop's round that failed, the next one to try again: a database outage is a warning (it says
    nothing new after the first), anything else a bug, with its traceback."""
    if database_outage(exc):
        log.warning(f"{message}: database unavailable", extra={"error": repr(exc)[:300]})
    else:
        log.error(message, exc_info=exc)


def _install_database_errors(app: FastAPI) -> None:
    # The database went away (restart, failover, network): 503, which clients and balancers retry, not a 500. The
    # engines ping a pooled connection before use, so the first request after it is back is served again.
    @app.exception_handler(sa_exc.DBAPIError)
    @app.exception_handler(sa_exc.TimeoutError)  # no pooled connection came free in time
    @app.exception_handler(ConnectionError)  # the driver's own connect, refused before SQLAlchemy wraps anything
    async def _database(_: Request, exc: Exception) -> OrjsonResponse:
        if not database_outage(exc):
            logger.exception("unhandled database error")  # a bug (constraint, syntax), not an outage
            return internal_error_response()
        logger.warning("database unavailable", extra={"error": repr(exc)[:300]})
        return error_response(
            APIError(503, "database unavailable", code="database_unavailable", headers={"Retry-After": "1"})
        )
