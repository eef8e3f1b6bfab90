"""The gateway's upstream client interface on aiohttp, used well: the library the hand-written proxy/client.py
replaces, for the gateway benchmark's ``gateway_w1_aiohttp`` row (bench/gateway_aiohttp.py starts the gateway
with it).

Same constructor keywords, ``post`` and response interface and errors as ``llmops_gateway.proxy.client``:
one ClientSession for the process with a TCPConnector holding ``max_in_flight`` keep-alive connections
(requests beyond that wait for one, as the lean client's slots make them), connect and between-bytes read
timeouts, bodies passed through undecoded (``auto_decompress=False``, no Accept-Encoding sent), streams read
with ``content.iter_any()``. URLs and proxy arguments are worked out once per base URL and path.
"""

import asyncio
import ssl
import urllib.request
from urllib.parse import unquote, urlsplit

import aiohttp
from yarl import URL

from llmops_common.http import ResponseTooLarge, read_limited
from llmops_gateway.proxy.connection import (
    UpstreamBroken,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from llmops_gateway.proxy.origins import bypasses_proxy


class _Outbox:
    """Stands in for proxy.outbox.Outbox: writes at once."""

    @staticmethod
    def send(transport: asyncio.Transport, data: bytes, then=None) -> None:
        if not transport.is_closing():
            transport.write(data)
        if then is not None:
            then()


def _upstream_error(exc: BaseException, where: str) -> UpstreamError:
    """aiohttp's exceptions as the gateway's (the order matters: connector errors are OS errors too)."""
    if isinstance(exc, ResponseTooLarge):
        return UpstreamTooLarge(str(exc))
    if isinstance(exc, TimeoutError):  # aiohttp's ConnectionTimeoutError and SocketTimeoutError among them
        return UpstreamTimeout(f"{where}: timed out ({exc})")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientHttpProxyError):
        return UpstreamConnectError(f"cannot connect to {where}: {exc}")
    return UpstreamBroken(f"{where}: {exc!r}")


_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


class AiohttpResponse:
    __slots__ = ("_client", "_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, client: "AiohttpUpstreamClient") -> None:
        self._response, self._client, self.status = response, client, response.status
        self.headers = [(name.lower(), value) for name, value in response.raw_headers]

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self, max_bytes: int | None = None) -> bytes:
        limit = self._client.max_answer_bytes if max_bytes is None else max_bytes
        try:
            return await (read_limited(self._response, limit) if limit else self._response.read())
        except _ERRORS as exc:
            raise _upstream_error(exc, str(self._response.url)) from exc

    async def chunks(self, max_bytes: int | None = None):
        """Yields body bytes as they arrive, within ``max_bytes`` (default: the client's ``max_stream_bytes``)."""
        limit, received = self._client.max_stream_bytes if max_bytes is None else max_bytes, 0
        try:
            async for data in self._response.content.iter_any():
                received += len(data)
                if limit and received > limit:
                    self._response.close()
                    raise UpstreamTooLarge(f"the upstream's answer is over {limit} bytes")
                yield data
        except _ERRORS as exc:
            raise _upstream_error(exc, str(self._response.url)) from exc

    def release(self) -> None:
        """The connection goes back to the pool if the body was read to its end (aiohttp closes it otherwise)."""
        self._response.release()

    def close(self) -> None:
        self._response.close()


class AiohttpUpstreamClient:
    """``proxy.client.UpstreamClient``'s interface on one aiohttp ClientSession."""

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_in_flight: int,
        answer_timeout_s: float = 0.0,
        idle_timeout_s: float = 30.0,
        max_answer_bytes: int = 0,
        max_stream_bytes: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: dict[str, str] | None = None,
    ) -> None:
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.answer_timeout_s = answer_timeout_s
        self.max_answer_bytes, self.max_stream_bytes = max_answer_bytes, max_stream_bytes
        self.max_in_flight, self.idle_timeout_s = max_in_flight, idle_timeout_s
        self.outbox = _Outbox()
        self._ssl = ssl_context
        self._proxies = urllib.request.getproxies() if proxies is None else proxies
        self._targets: dict[tuple[str, str], tuple[URL, dict]] = {}
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the running loop

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_in_flight,
            limit_per_host=0,
            keepalive_timeout=self.idle_timeout_s,
            ssl=self._ssl if self._ssl is not None else True,  # True: verified with the default context
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self.answer_timeout_s or None, sock_connect=self.connect_timeout_s, sock_read=self.read_timeout_s
            ),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
        )
        return self._session

    def _target(self, base_url: str, path: str) -> tuple[URL, dict]:
        """The URL and proxy arguments of one base URL and path, worked out once."""
        key = (base_url, path)
        target = self._targets.get(key)
        if target is None:
            url = URL(base_url.rstrip("/") + path)
            extra: dict = {}
            proxy = self._proxies.get(url.scheme)
            if proxy and not bypasses_proxy(self._proxies.get("no", ""), url.host or "", url.port or 0):
                parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
                extra["proxy"] = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
                if parts.username is not None:
                    extra["proxy_auth"] = aiohttp.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
            target = self._targets[key] = (url, extra)
        return target

    async def post(self, base_url: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> AiohttpResponse:
        """Sends a POST to ``base_url + path``; returns when the answer's headers are in."""
        session = self._session or self._open()
        url, extra = self._target(base_url, path)
        str_headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
        for attempt in (1, 2):
            try:
                response = await session.post(url, data=body, headers=str_headers, **extra)
            except aiohttp.ServerDisconnectedError as exc:
                # aiohttp does not retry a POST on a kept-alive connection the upstream closed as it was sent;
                # the lean client does (nothing was answered), once.
                if attempt == 2:
                    raise _upstream_error(exc, str(url)) from exc
                continue
            except _ERRORS as exc:
                raise _upstream_error(exc, str(url)) from exc
            return AiohttpResponse(response, self)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
