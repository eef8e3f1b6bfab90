"""The upstream client (proxy.client) over TLS and through HTTP proxies, against local servers.

A certificate authority and server certificates are made here (``cryptography``); the https upstream is a TLS
relay in front of the fake upstream, and the proxy a small asyncio one that forwards absolute-form requests and
tunnels CONNECT, recording what it saw.
"""

from urllib.parse import urlsplit

import httpx
import pytest
import uvloop

from llmops_gateway.proxy.client import UpstreamClient
from llmops_gateway.proxy.connection import UpstreamConnectError
from llmops_gateway.proxy.origins import bypasses_proxy
from llmops_testkit.backends import postgres_only
from llmops_testkit.fake_upstream import FakeUpstream
from llmops_testkit.gateway import chat_body
from llmops_testkit.tls import Authority, RecordingProxy, TlsRelay, header_value

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
STREAM = CHAT[:-1] + b', "stream": true}'
JSON = [(b"content-type", b"application/json")]


def client(**overrides) -> UpstreamClient:
    settings = {"connect_timeout_s": 2.0, "read_timeout_s": 5.0, "max_in_flight": 100, "proxies": {}}
    return UpstreamClient(**(settings | overrides))


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> Authority:
    return Authority(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def fake():
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


async def _chat(http: UpstreamClient, base_url: str) -> bytes:
    response = await http.post(base_url, "/chat/completions", CHAT, JSON)
    assert response.status == 200
    body = await response.read()
    response.release()
    return body


async def _stream(http: UpstreamClient, base_url: str) -> list[bytes]:
    response = await http.post(base_url, "/chat/completions", STREAM, JSON)
    assert response.header(b"content-type").startswith(b"text/event-stream")
    pieces = [piece async for piece in response.chunks()]
    response.release()
    assert b"".join(pieces).endswith(b"data: [DONE]\n\n")
    return pieces


# --- TLS ---


async def test_tls_whole_and_streamed_answers_on_one_kept_alive_connection(authority, fake):
    async with TlsRelay(authority.server_context("127.0.0.1", "localhost"), fake.port) as upstream:
        http = client(ssl_context=authority.client_context())
        for _ in range(3):
            assert (await _chat(http, upstream.base_url)).startswith(b"{")
        fake.behaviour.chunks, fake.behaviour.chunk_delay_s = 4, 0.02
        try:
            assert len(await _stream(http, upstream.base_url)) >= 4
        finally:
            fake.reset()
        assert await _chat(http, upstream.base_url)
        assert upstream.connections == 1  # the TLS connection was kept alive and reused
        assert [len(idle) for idle in http._idle.values()] == [1]
        await http.aclose()


async def test_untrusted_certificate_is_refused(authority, fake):
    async with TlsRelay(authority.server_context("127.0.0.1"), fake.port) as upstream:
        http = client()  # the default context: the system's CAs, which do not include the test CA
        with pytest.raises(UpstreamConnectError, match="certificate verify failed"):
            await http.post(upstream.base_url, "/chat/completions", CHAT, JSON)
        assert http.slots._value == 100


async def test_certificate_for_another_name_is_refused(authority, fake):
    async with TlsRelay(authority.server_context("elsewhere.example"), fake.port) as upstream:
        http = client(ssl_context=authority.client_context())
        with pytest.raises(UpstreamConnectError, match="certificate verify failed"):
            await http.post(upstream.base_url, "/chat/completions", CHAT, JSON)


async def test_ssl_cert_file_is_honoured_by_default(authority, fake, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca_path))
    async with TlsRelay(authority.server_context("127.0.0.1"), fake.port) as upstream:
        http = client()
        assert await _chat(http, upstream.base_url)
        await http.aclose()


# --- proxies ---


async def test_http_upstream_through_a_proxy_in_absolute_form(fake):
    async with RecordingProxy() as proxy:
        http = client(proxies={"http": proxy.url})
        for _ in range(2):
            assert await _chat(http, fake.base_url)
        assert await _stream(http, fake.base_url)
        target = f"POST http://127.0.0.1:{fake.port}/v1/chat/completions HTTP/1.1"
        assert proxy.lines() == [target] * 3
        assert header_value(proxy.seen[0][1], "host") == f"127.0.0.1:{fake.port}"
        assert header_value(proxy.seen[0][1], "proxy-authorization") is None
        assert proxy.connections == 1  # kept alive to the proxy
        await http.aclose()


async def test_https_upstream_through_a_connect_tunnel(authority, fake):
    async with RecordingProxy() as proxy, TlsRelay(authority.server_context("127.0.0.1"), fake.port) as upstream:
        http = client(ssl_context=authority.client_context(), proxies={"https": proxy.url, "http": "http://unused:1"})
        for _ in range(2):
            assert await _chat(http, upstream.base_url)
        assert await _stream(http, upstream.base_url)
        port = urlsplit(upstream.base_url).port
        assert proxy.lines() == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]  # one tunnel, kept alive
        assert upstream.connections == 1
        await http.aclose()


async def test_tunnel_to_an_untrusted_upstream_is_refused(authority, fake):
    async with RecordingProxy() as proxy, TlsRelay(authority.server_context("127.0.0.1"), fake.port) as upstream:
        http = client(proxies={"https": proxy.url})
        with pytest.raises(UpstreamConnectError, match=f"through proxy {proxy.url}.*certificate verify failed"):
            await http.post(upstream.base_url, "/chat/completions", CHAT, JSON)
        assert len(proxy.seen) == 1


async def test_proxy_credentials_are_sent_to_the_proxy(authority, fake):
    async with (
        RecordingProxy(credentials="user:p@ss w") as proxy,
        TlsRelay(authority.server_context("127.0.0.1"), fake.port) as upstream,
    ):
        with_credentials = proxy.url.replace("http://", "http://user:p%40ss%20w@")
        http = client(
            ssl_context=authority.client_context(), proxies={"http": with_credentials, "https": with_credentials}
        )
        assert await _chat(http, fake.base_url)
        assert await _chat(http, fake.base_url)
        assert await _chat(http, upstream.base_url)
        assert [line.split(" ")[0] for line in proxy.lines()] == ["POST", "POST", "CONNECT"]
        assert {header_value(headers, "proxy-authorization") for _, headers in proxy.seen} == {proxy.expected}
        await http.aclose()


async def test_proxy_refusals_are_connect_errors(authority, fake):
    async with (
        RecordingProxy(credentials="user:secret") as proxy,
        TlsRelay(authority.server_context("127.0.0.1"), fake.port) as upstream,
    ):
        wrong = proxy.url.replace("http://", "http://user:wrong@")
        for proxy_url in (proxy.url, wrong):
            http = client(ssl_context=authority.client_context(), proxies={"http": proxy_url, "https": proxy_url})
            with pytest.raises(UpstreamConnectError, match="407") as refused:
                await http.post(upstream.base_url, "/chat/completions", CHAT, JSON)
            assert "wrong" not in str(refused.value)  # no secret in the message
            with pytest.raises(UpstreamConnectError, match="wants credentials"):
                await http.post(fake.base_url, "/chat/completions", CHAT, JSON)
            assert http.slots._value == 100
    http = client(proxies={"http": proxy.url})  # the proxy is gone
    with pytest.raises(UpstreamConnectError, match=f"through proxy {proxy.url}"):
        await http.post(fake.base_url, "/chat/completions", CHAT, JSON)


async def test_no_proxy_bypasses_the_proxy(authority, fake):
    async with RecordingProxy() as proxy, TlsRelay(authority.server_context("127.0.0.1"), fake.port) as upstream:
        for no_proxy in (
            "127.0.0.1",
            "localhost, 127.0.0.0/8",
            "*",
            f"127.0.0.1:{fake.port},127.0.0.1:{upstream.port}",
        ):
            proxies = {"http": proxy.url, "https": proxy.url, "no": no_proxy}
            http = client(ssl_context=authority.client_context(), proxies=proxies)
            assert await _chat(http, fake.base_url)
            assert await _chat(http, upstream.base_url)
            await http.aclose()
        assert proxy.seen == []


async def test_proxy_settings_come_from_the_environment_once(fake, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    async with RecordingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        through = client(proxies=None)
        monkeypatch.setenv("no_proxy", "example.com,127.0.0.1")
        bypassing = client(proxies=None)
        monkeypatch.delenv("HTTP_PROXY")
        monkeypatch.delenv("no_proxy")
        assert await _chat(through, fake.base_url)  # read at construction: later changes do not matter
        assert await _chat(bypassing, fake.base_url)
        assert proxy.lines() == [f"POST http://127.0.0.1:{fake.port}/v1/chat/completions HTTP/1.1"]
        monkeypatch.setenv("http_proxy", proxy.url)  # lower case too
        lower = client(proxies=None)
        assert await _chat(lower, fake.base_url)
        assert len(proxy.seen) == 2
        for http in (through, bypassing, lower):
            await http.aclose()


def test_origins_through_a_proxy_pool_apart_and_direct_ones_stay_as_they_were():
    direct = client().origin("http://127.0.0.1:8012/v1")
    assert (direct.path_prefix, direct.host_lines, direct.address) == (b"/v1", b"127.0.0.1:8012", ("127.0.0.1", 8012))
    proxied = client(proxies={"http": "user:pw@proxy.internal:3128"}).origin("http://127.0.0.1:8012/v1")
    assert proxied.path_prefix == b"http://127.0.0.1:8012/v1"
    assert proxied.host_lines == b"127.0.0.1:8012\r\nproxy-authorization: Basic dXNlcjpwdw=="
    assert proxied.address == ("proxy.internal", 3128)
    assert proxied.pool_key != direct.pool_key
    tunnelled = client(proxies={"https": "http://proxy.internal:3128"}).origin("https://api.example.com/v1")
    assert tunnelled.tunnel and tunnelled.path_prefix == b"/v1" and tunnelled.host_lines == b"api.example.com"


def test_only_http_proxies_are_accepted():
    with pytest.raises(ValueError, match="only http:// proxies"):
        client(proxies={"https": "socks5://user:pw@127.0.0.1:1080"})


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypassed"),
    [
        ("", "api.example.com", 443, False),
        ("*", "api.example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "api.example.com", 443, True),
        ("*.example.com", "example.com", 443, True),
        ("example.com", "badexample.com", 443, False),
        ("example.com:8443", "api.example.com", 443, False),
        ("example.com:443", "api.example.com", 443, True),
        ("10.0.0.0/8, localhost", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("::1", "::1", 80, True),
        ("[::1]:8000", "::1", 8000, True),
        ("Example.COM", "api.example.com", 80, True),
    ],
)
def test_no_proxy_matching(no_proxy, host, port, bypassed):
    assert bypasses_proxy(no_proxy, host, port) is bypassed


def test_tunnel_under_uvloop(authority, fake):
    """The gateway runs on uvloop: CONNECT and start_tls over the tunnel there too."""

    async def scenario() -> list[str]:
        async with RecordingProxy() as proxy, TlsRelay(authority.server_context("127.0.0.1"), fake.port) as upstream:
            http = client(ssl_context=authority.client_context(), proxies={"https": proxy.url})
            assert await _chat(http, upstream.base_url)
            assert await _stream(http, upstream.base_url)
            assert await _chat(http, upstream.base_url)
            await http.aclose()
            return proxy.lines()

    lines = uvloop.run(scenario())
    assert len(lines) == 1 and lines[0].startswith("CONNECT 127.0.0.1:")


# --- the whole gateway ---


@postgres_only  # TLS to upstreams, not the store
async def test_gateway_reaches_an_https_upstream_signed_by_its_configured_ca(
    make_gateway, sql_url, gateway, authority, fake
):
    """GATEWAY_UPSTREAM_CA_BUNDLE: a private CA trusted for upstreams, end to end through a gateway process; the
    session's gateway (no CA bundle) does not trust it."""
    async with TlsRelay(authority.server_context("127.0.0.1"), fake.port) as relay:
        trusting = make_gateway(sql_url=sql_url, GATEWAY_UPSTREAM_CA_BUNDLE=str(authority.ca_path))
        statuses = []
        for each in (trusting, gateway):
            route = each.put_route(variants=[{"name": "tls", "upstream": relay.base_url, "model": "m"}])
            _, key = each.create_key()
            async with httpx.AsyncClient(base_url=each.url, headers={"authorization": f"Bearer {key}"}) as client:
                reply = await client.post("/v1/chat/completions", json=chat_body(route), timeout=30)
            statuses.append((reply.status_code, reply.json().get("error", {}).get("code")))
    assert statuses == [(200, None), (502, "upstream_connect")]
