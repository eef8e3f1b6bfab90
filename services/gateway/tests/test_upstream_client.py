"""The lean upstream client (proxy.client) against real sockets: the fake upstream and small raw servers."""

import asyncio

import pytest

from llmops_gateway.proxy.client import UpstreamClient
from llmops_gateway.proxy.connection import UpstreamBroken, UpstreamConnectError, UpstreamTimeout, UpstreamTooLarge
from llmops_testkit.fake_upstream import FakeUpstream

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
JSON = [(b"content-type", b"application/json")]


def client(**overrides) -> UpstreamClient:
    return UpstreamClient(**{"connect_timeout_s": 2.0, "read_timeout_s": 5.0, "max_in_flight": 100, **overrides})


async def raw_server(answer):
    """A server that reads one request head and lets ``answer(reader, writer)`` do the rest."""

    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"


@pytest.fixture
def fake():
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


async def test_keep_alive_connection_is_reused(fake):
    http = client()
    answers = []
    for _ in range(5):
        response = await http.post(fake.base_url, "/chat/completions", CHAT, JSON)
        answers.append((response.status, (await response.read())[:1]))
        response.release()
    assert answers == [(200, b"{")] * 5
    assert [len(idle) for idle in http._idle.values()] == [1]  # one connection served all five
    assert http.slots._value == 100  # every in-flight slot given back
    await http.aclose()


async def test_streamed_answer_arrives_in_pieces(fake):
    fake.behaviour.chunks, fake.behaviour.chunk_delay_s = 4, 0.05
    http = client()
    response = await http.post(fake.base_url, "/chat/completions", CHAT[:-1] + b', "stream": true}', JSON)
    assert response.header(b"content-type").startswith(b"text/event-stream")
    pieces = [piece async for piece in response.chunks()]
    response.release()
    assert len(pieces) >= 4 and b"".join(pieces).endswith(b"data: [DONE]\n\n")
    await http.aclose()


async def test_body_that_ends_at_close():
    async def answer(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    server, url = await raw_server(answer)
    http = client()
    response = await http.post(url, "/x", b"{}", JSON)
    assert await response.read() == b"all of it"
    response.release()
    assert not any(http._idle.values())  # not reusable
    server.close()


async def test_large_answers_arrive_whole_and_streamed():
    big = b"x" * (3 * 1024 * 1024)

    async def answer(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big) + big)
        await writer.drain()

    server, url = await raw_server(answer)
    http = client()
    whole = await http.post(url, "/x", b"{}", JSON)
    assert await whole.read() == big  # more than the pause threshold, read at once
    whole.release()
    streamed = await http.post(url, "/x", b"{}", JSON)
    assert b"".join([piece async for piece in streamed.chunks()]) == big  # paused and resumed as it is consumed
    streamed.release()
    server.close()


async def test_answers_past_their_limit_are_cut_and_their_connection_closed():
    """Read whole, an answer stops at ``max_answer_bytes``; streamed, what came within ``max_stream_bytes`` is
    yielded, then the error. One that announces more (content-length) is refused as its reader starts. Either
    way the slot is given back and the connection is not pooled."""
    big = b"x" * (300 * 1024)

    async def answer(reader, writer):
        length = b"" if b"announce" in await reader.readuntil(b"}") else b"transfer-encoding: chunked\r\n"
        writer.write(b"HTTP/1.1 200 OK\r\n%s\r\n" % (length or b"content-length: %d\r\n" % len(big)))
        for i in range(0, len(big), 16 * 1024):
            piece = big[i : i + 16 * 1024]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if length else piece)
            await writer.drain()
        writer.write(b"0\r\n\r\n" if length else b"")

    server, url = await raw_server(answer)
    http = client(max_answer_bytes=100 * 1024, max_stream_bytes=200 * 1024, max_in_flight=1)
    whole = await http.post(url, "/x", b"{}", JSON)
    with pytest.raises(UpstreamTooLarge, match="over 102400 bytes"):
        await whole.read()
    whole.release()
    streamed = await http.post(url, "/x", b"{}", JSON)
    received = []
    with pytest.raises(UpstreamTooLarge):
        async for piece in streamed.chunks():
            received.append(piece)
    streamed.release()
    assert 0 < len(b"".join(received)) <= 200 * 1024
    announced = await http.post(url, "/x", b'{"announce"}', JSON)
    assert await announced.read(len(big)) == big  # a reader may allow more
    announced.release()
    announced = await http.post(url, "/x", b'{"announce"}', JSON)
    with pytest.raises(UpstreamTooLarge):
        await announced.read()
    announced.release()
    assert http.slots._value == 1 and whole._conn.closed and streamed._conn.closed and announced._conn.closed
    server.close()


async def test_idle_connection_closed_by_the_upstream_is_replaced_without_an_error():
    async def handle(reader, writer):  # answers one request per connection, then drops the next unanswered
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    http = client()
    for _ in range(3):  # the 2nd and 3rd go out on a kept-alive connection that the server then drops
        response = await http.post(url, "/x", b"{}", JSON)
        assert await response.read() == b"ok"
        response.release()
    server.close()


async def test_silent_upstream_times_out_and_frees_its_slot():
    async def never_answer(reader, writer):
        await asyncio.sleep(5)

    server, url = await raw_server(never_answer)
    http = client(read_timeout_s=0.3, max_in_flight=1)
    with pytest.raises(UpstreamTimeout):
        await http.post(url, "/x", b"{}", JSON)
    assert http.slots._value == 1
    server.close()


async def test_silence_between_chunks_times_out():
    async def stall_mid_body(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    server, url = await raw_server(stall_mid_body)
    http = client(read_timeout_s=0.3)
    response = await http.post(url, "/x", b"{}", JSON)
    received = []
    with pytest.raises(UpstreamTimeout):
        async for piece in response.chunks():
            received.append(piece)
    assert received == [b"hello"]
    response.close()
    server.close()


async def test_refused_connection_and_garbage_are_upstream_errors():
    http = client()
    with pytest.raises(UpstreamConnectError):
        await http.post("http://127.0.0.1:9/v1", "/x", b"{}", JSON)

    async def garbage(reader, writer):
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    server, url = await raw_server(garbage)
    with pytest.raises(UpstreamBroken):
        await http.post(url, "/x", b"{}", JSON)
    server.close()


async def test_in_flight_limit_makes_the_next_request_wait(fake):
    http = client(max_in_flight=1)
    first = await http.post(fake.base_url, "/chat/completions", CHAT, JSON)
    second = asyncio.ensure_future(http.post(fake.base_url, "/chat/completions", CHAT, JSON))
    await asyncio.sleep(0.1)
    assert not second.done()
    await first.read()
    first.release()
    response = await asyncio.wait_for(second, 2)
    assert response.status == 200
    await response.read()
    response.release()
    await http.aclose()
