"""HTTP client for the gateway's admin API. API errors become one clear line and a non-zero exit, never a traceback."""

import os
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from llmops_cli.services import service_url
from llmops_cli.state import load_secrets, state_dir

err_console = Console(stderr=True)

GatewayUrl = Annotated[
    str | None,
    typer.Option(
        "--gateway-url",
        envvar="LLMOPS_GATEWAY_URL",
        show_default="http://127.0.0.1:8000",
        help="Base URL of the gateway.",
    ),
]


def fail(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(1)


def admin_token() -> str:
    """``$LLMOPS_ADMIN_TOKEN``, else the token ``llmops up`` generated in the state dir.

    There is deliberately no command-line option: a token on the command line ends up in ps and shell history.
    """
    if token := os.environ.get("LLMOPS_ADMIN_TOKEN"):
        return token
    secrets = load_secrets(state_dir(create=False), create=False)
    if secrets is None:
        fail(
            "no admin token: set LLMOPS_ADMIN_TOKEN, or run this where `llmops up` keeps its state "
            "(LLMOPS_HOME, default ./.llmops)"
        )
    return secrets.admin_token


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text.strip()[:500] or response.reason_phrase
    return f"{response.status_code}: {message}"


class AdminClient:
    def __init__(
        self,
        gateway_url: str | None = None,
        token: str | None = None,
        *,
        service: str = "gateway",
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """An admin client of ``service`` (the gateway unless named); every service takes the platform's admin token."""
        self.service = service
        self.base_url = (gateway_url or service_url(service)).rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token or admin_token()}"},
            timeout=timeout_s,
            transport=transport,
        )

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None) -> Any:
        response = self._send(method, path, json=json, params=params)
        if response.status_code >= 400:
            fail(error_message(response))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            fail(f"the {self.service} answered {method} {path} with something that is not JSON")

    def call(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        """The response whatever its status (the caller reads the error body: ``llmops apply`` maps an error's
        ``param`` to a line of its file); only an unreachable service fails here."""
        return self._send(method, path, json=json)

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(
                f"cannot reach the {self.service} at {self.base_url} ({exc.__class__.__name__}: {exc}); "
                "is it running? (llmops up)"
            )

    def download(self, path: str, *, params: dict, into) -> int:
        """Streams a response body into the binary file ``into``; returns the number of lines."""
        lines = 0
        try:
            with self._http.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    fail(error_message(response))
                for chunk in response.iter_bytes():
                    into.write(chunk)
                    lines += chunk.count(b"\n")
        except httpx.HTTPError as exc:
            fail(f"cannot reach the {self.service} at {self.base_url} ({exc.__class__.__name__}: {exc})")
        return lines

    def get(self, path: str, params: dict | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any) -> Any:
        return self.request("POST", path, json=json)

    def put(self, path: str, json: Any) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
