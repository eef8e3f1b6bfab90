"""Pooled HTTP client factory. aiohttp: its connection pool holds up under concurrency where httpx's does not."""

import aiohttp

from llmops_common import tracing


def make_http_session(
    *,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 60.0,
    total_timeout_s: float | None = None,
    max_connections: int = 1000,
    max_connections_per_host: int = 0,
    keepalive_timeout_s: float = 30.0,
) -> aiohttp.ClientSession:
    """One session per process (made in a lifespan, closed with it): keep-alive connections are reused."""
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        limit_per_host=max_connections_per_host,
        keepalive_timeout=keepalive_timeout_s,
        ttl_dns_cache=300,
    )
    timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,  # bytes pass through as the upstream sent them
        skip_auto_headers=("User-Agent",),
        trace_configs=tracing.aiohttp_trace_configs(),  # traceparent on every request; none with tracing off
    )


class ResponseTooLarge(aiohttp.ClientPayloadError):
    """An answer longer than its reader's limit: reading stopped there and the connection was closed."""


async def read_limited(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body of ``response``, read as it arrives (never more than ``max_bytes`` and one piece held), or
    ``ResponseTooLarge`` once it passes ``max_bytes``: a peer that misbehaves cannot make its reader buffer without end.
    A ``ClientError``, so callers that handle a failed exchange handle this one too."""
    if response.content_length is not None and response.content_length > max_bytes:
        response.close()
        raise ResponseTooLarge(f"the answer of {response.url.host} announces more than {max_bytes} bytes")
    body = bytearray()
    async for piece in response.content.iter_chunked(64 * 1024):
        body += piece
        if len(body) > max_bytes:
            response.close()  # not read to its end: the connection cannot be reused
            raise ResponseTooLarge(f"the answer of {response.url.host} is over {max_bytes} bytes")
    return bytes(body)


def describe_error(exc: BaseException) -> str:
    """An HTTP client error as a log line or an error message may show it. aiohttp's errors about an answer (a
    status raised for, too many redirects, JSON of another content type) hold the request they answered, and their
    ``repr`` shows its headers, bearer token included: those are told by their class, status and message only."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}(status={exc.status}, message={exc.message!r})"
    return repr(exc)
