"""The other services, as the console reads them: over their HTTP APIs with their own tokens (as the CLI does),
never by importing their packages. A service that is not configured or does not answer is a ``BackendError``
the page shows in words, never a 500."""

from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from llmops_common.errors import APIError


class BackendError(Exception):
    def __init__(self, service: str, message: str, *, status: int = 503) -> None:
        super().__init__(f"{service}: {message}")
        self.service, self.message, self.status = service, message, status


@asynccontextmanager
async def gateway_errors():
    """The gateway's own service functions raise ``APIError`` (JSON for API clients); on a console page the same
    error is a page in words."""
    try:
        yield
    except APIError as exc:
        raise BackendError("gateway", exc.message, status=exc.status) from None


class ServiceClient:
    def __init__(
        self,
        http: aiohttp.ClientSession | None,
        *,
        service: str,
        url: str | None,
        token: str | None,
        timeout_s: float = 10.0,
    ) -> None:
        self._http, self.service, self._url, self._token = http, service, (url or "").rstrip("/"), token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    @property
    def configured(self) -> bool:
        return bool(self._http and self._url and (self._token or not self.needs_token))

    needs_token = True  # MLflow's tracking server runs without one here; every llmops service needs its token

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self._token}"} if self._token else {}
        if content_type:
            headers["content-type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        """``json`` or raw ``data`` (of ``content_type``) as the body; the answer's JSON, or a ``BackendError``.
        A list in ``params`` repeats its parameter; empty values are left out."""
        if not self.configured:
            raise BackendError(self.service, "not configured on this gateway")
        clean = [
            (name, value)
            for name, given in (params or {}).items()
            for value in (given if isinstance(given, list) else [given])
            if value not in (None, "")
        ]
        try:
            async with self._http.request(
                method,
                self._url + path,
                params=clean,
                json=json,
                data=data,
                timeout=self._timeout,
                headers=self._headers(content_type),
            ) as response:
                body = await response.json(content_type=None) if response.content_length != 0 else None
                if response.status >= 400:
                    raise BackendError(self.service, _error_message(body, response.status), status=response.status)
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BackendError(self.service, f"unreachable ({type(exc).__name__})") from None


def _error_message(body: Any, status: int) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or status)
    return f"answered {status}"


class OpenServiceClient(ServiceClient):
    """A service reached without a token (MLflow's tracking server, which the platform runs without auth)."""

    needs_token = False
