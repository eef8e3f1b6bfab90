"""The request-head deadline on a real uvicorn server (in this process, loopback), through public APIs only.

What it relies on, checked here on whichever uvicorn is installed: uvicorn builds each connection's protocol from
``Config(http=...)`` with its own keyword arguments, its httptools protocol is an ``asyncio.Protocol`` built from
those same arguments, and the wrapper hands every ``asyncio.Protocol`` event on. The gateway's production server
is tested the same way in services/gateway/tests/test_slow_clients.py.
"""

import asyncio
import inspect
import pickle
import socket

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llmops_common.header_timeout import HeadDeadlineProtocol, http_protocol

DEADLINE_S = 0.3
RELEASE_HELD_ANSWER = asyncio.Event()


async def app(scope, receive, send):
    """Answers ``<path> <body length>``; ``/held`` streams a first chunk, then waits for RELEASE_HELD_ANSWER."""
    length, more = 0, True
    while more:
        message = await receive()
        length += len(message.get("body", b""))
        more = message.get("more_body", False)
    answer = f"{scope['path']} {length}".encode()
    if scope["path"] == "/held":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await RELEASE_HELD_ANSWER.wait()
    else:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]}
        )
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
async def server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=http_protocol(DEADLINE_S), lifespan="off", log_config=None, access_log=False)
    running = uvicorn.Server(config)
    serving = asyncio.create_task(running.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not running.started:
            await asyncio.sleep(0.01)
    yield sock.getsockname()
    RELEASE_HELD_ANSWER.set()
    running.should_exit = True
    await asyncio.wait_for(serving, 10)
    sock.close()


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def trickle_until_closed(reader, writer, *, every_s: float = 0.05, most: int = 100) -> tuple[int, bytes]:
    """Sends one header byte at a time until the server closes: (bytes sent, what the server answered)."""
    for sent in range(most):
        writer.write(b"a")
        try:
            return sent, await asyncio.wait_for(reader.read(), every_s)
        except TimeoutError:
            continue
    return most, b""


def test_the_contract_it_relies_on():
    assert "http" in inspect.signature(uvicorn.Config).parameters
    assert issubclass(HttpToolsProtocol, asyncio.Protocol)
    # Every asyncio.Protocol event reaches the inner protocol: none falls through to asyncio.Protocol's no-ops.
    events = {name for name in dir(asyncio.Protocol) if not name.startswith("_")}
    assert events <= set(vars(HeadDeadlineProtocol)), events - set(vars(HeadDeadlineProtocol))


def test_the_factory_reaches_worker_processes_and_0_turns_the_deadline_off():
    # uvicorn pickles its config, `http` included, into each worker process.
    assert pickle.loads(pickle.dumps(http_protocol(5))).keywords == {"inner": HttpToolsProtocol, "header_timeout_s": 5}
    assert http_protocol(0) is HttpToolsProtocol


async def test_a_trickled_head_gets_408_and_the_connection_closes(server):
    reader, writer = await asyncio.open_connection(*server)
    writer.write(b"POST / HTTP/1.1\r\nhost: x\r\nx-slow: ")
    sent, answer = await trickle_until_closed(reader, writer)
    writer.close()
    assert sent < 100, "the server kept a trickling client for 5 s"
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_connection_that_never_sends_gets_408(server):
    reader, writer = await asyncio.open_connection(*server)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_kept_alive_connections_next_head_has_its_own_deadline(server):
    """Nothing is written then: whether an answer is still going out is uvicorn's own state."""
    reader, writer = await asyncio.open_connection(*server)
    writer.write(b"GET /first HTTP/1.1\r\nhost: x\r\n\r\n")
    assert (await read_answer(reader)).endswith(b"/first 0")
    await asyncio.sleep(2 * DEADLINE_S)  # idle between requests: the keep-alive timer's business, not this one's
    writer.write(b"GET /next HTTP/1.1\r\n")
    sent, answer = await trickle_until_closed(reader, writer)
    writer.close()
    assert sent < 100 and answer == b""


async def test_a_head_pipelined_behind_an_answer_still_going_out_is_cut_without_a_408_inside_it(server):
    reader, writer = await asyncio.open_connection(*server)
    writer.write(b"GET /held HTTP/1.1\r\nhost: x\r\n\r\nGET /next HTTP/1.1\r\nhost")
    received = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert received.startswith(b"HTTP/1.1 200 ") and b"first" in received
    assert b"408" not in received


async def test_a_body_uploaded_slowly_is_not_cut(server):
    reader, writer = await asyncio.open_connection(*server)
    writer.write(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 8\r\n\r\n")
    for _ in range(8):  # 8 x 0.1 s: well past the head's deadline
        await asyncio.sleep(0.1)
        writer.write(b"b")
    answer = await read_answer(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"/upload 8")


async def test_pipelined_requests_are_answered_in_order_then_the_connection_is_kept(server):
    reader, writer = await asyncio.open_connection(*server)
    writer.write(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nPOST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc")
    assert (await read_answer(reader)).endswith(b"/a 0")
    assert (await read_answer(reader)).endswith(b"/b 3")
    writer.write(b"GET /c HTTP/1.1\r\nhost: x\r\n\r\n")
    assert (await read_answer(reader)).endswith(b"/c 0")
    writer.close()
