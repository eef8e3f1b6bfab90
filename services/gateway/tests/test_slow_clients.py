"""Slow clients (slowloris) against the gateway's production server (``python -m llmops_gateway``), raw sockets.

A request's head must be complete within GATEWAY_HEADER_TIMEOUT_S (1 s here) of its first byte, else the connection
is closed (after a 408 on its first request; a later one's answer may still be going out, so nothing is written);
a client trickling its headers holds nothing for long, and others are served meanwhile.
Figures (what trickling clients cost without the deadline) are in bench/slowloris_bench.py.
"""

import socket
import time

import orjson
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant

pytestmark = postgres_only  # the HTTP server's deadlines, not the store

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"


@pytest.fixture(scope="module")
def gateway(make_gateway, sql_url):
    return make_gateway(sql_url=sql_url, GATEWAY_HEADER_TIMEOUT_S="1")


@pytest.fixture
def key(gateway):
    return gateway.create_key()[1]


def connect(gateway) -> socket.socket:
    host, port = gateway.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def trickle_until_closed(sock: socket.socket, *, every_s: float = 0.2, most: int = 100) -> tuple[int, bytes]:
    """Sends one header byte at a time until the server closes: (bytes sent, what the server answered)."""
    sock.settimeout(every_s)
    for sent, byte in enumerate((b"x-slow: " + b"a" * most)[:most]):
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # the server closed and the peer reset
            return sent, b""
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return sent, b""
        while chunk := _recv_quietly(sock):
            answer += chunk
        return sent, answer
    return most, b""


def _recv_quietly(sock: socket.socket) -> bytes:
    try:
        return sock.recv(4096)
    except OSError:
        return b""


def request(key: str, body: bytes) -> bytes:
    head = HEAD + f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
    return head + body


def test_a_trickled_head_is_cut_off_with_408(gateway):
    with connect(gateway) as sock:
        sock.sendall(HEAD)
        sent, answer = trickle_until_closed(sock)
    assert sent < 100, "the server kept a trickling client for 20 s"
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_an_idle_connection_that_never_sends_is_closed(gateway):
    with connect(gateway) as sock:
        sock.settimeout(10)
        assert sock.recv(4096).startswith(b"HTTP/1.1 408 ")


def test_a_kept_alive_connection_trickling_its_next_request_is_cut_off(gateway, upstreams, key):
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    with connect(gateway) as sock:
        sock.sendall(request(key, orjson.dumps(chat_body(route))))
        first = b""
        while b"\r\n\r\n" not in first or not first.rstrip().endswith(b"}"):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(HEAD)
        sent, answer = trickle_until_closed(sock)
    assert sent < 100 and answer == b""


def test_trickling_clients_do_not_hold_up_others(gateway, upstreams, key):
    """Fifty connections trickling their heads: a normal request is answered meanwhile, and every trickler is
    closed by the server."""
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    slow = [connect(gateway) for _ in range(50)]
    try:
        for sock in slow:
            sock.sendall(HEAD + b"x-slow: a")
        with gateway.client(key) as client:
            assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
        closed = 0
        deadline = time.monotonic() + 15
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            closed += answer.startswith(b"HTTP/1.1 408 ")
        assert closed == len(slow)
    finally:
        for sock in slow:
            sock.close()


def test_a_normal_request_with_a_pause_under_the_deadline_is_served(gateway, upstreams, key):
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    raw = request(key, orjson.dumps(chat_body(route)))
    with connect(gateway) as sock:
        sock.sendall(raw[:20])
        time.sleep(0.3)
        sock.sendall(raw[20:])
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
