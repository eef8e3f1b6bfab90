"""HTTP/1.1 conformance of the gateway's server side, on raw sockets: what clients and load balancers really send.

Keep-alive, pipelining, ``Connection: close``, ``Expect: 100-continue``, chunked request bodies, a client that
leaves mid-body, oversized headers and bodies. Each case also checks that the gateway still serves afterwards.
"""

import socket
import time

import orjson
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant

pytestmark = postgres_only  # the HTTP server, not the store


@pytest.fixture(scope="module")
def gateway(make_gateway, sql_url):
    return make_gateway(sql_url=sql_url)


@pytest.fixture
def route(gateway, upstreams):
    return gateway.put_route(variants=[variant("a", upstreams["alpha"])])


@pytest.fixture
def key(gateway):
    return gateway.create_key()[1]


def _raw_head(key: str, length: int, *, path: str = "/v1/chat/completions", extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer {key}\r\n"
    return f"{head}{extra}content-length: {length}\r\n\r\n".encode()


def _raw_request(key: str, body: bytes) -> bytes:
    return _raw_head(key, len(body)) + body


def _read_responses(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` whole content-length responses as (head, body)."""
    data, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} responses"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(data) < length:
            data += sock.recv(65536)
        out.append((head, data[:length]))
        data = data[length:]
    return out


def _connect(gateway) -> socket.socket:
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_keep_alive_and_pipelined_requests_are_answered_in_order(gateway, route, key):
    bodies = [orjson.dumps(chat_body(route, content=f"question {i}")) for i in range(3)]
    with _connect(gateway) as sock:
        sock.sendall(_raw_request(key, bodies[0]))
        first = _read_responses(sock, 1)
        sock.sendall(_raw_request(key, bodies[1]) + _raw_request(key, bodies[2]))  # pipelined in one write
        rest = _read_responses(sock, 2)
    assert [head.split(b"\r\n")[0] for head, _ in first + rest] == [b"HTTP/1.1 200 OK"] * 3
    assert all(orjson.loads(body)["usage"]["total_tokens"] for _, body in first + rest)


def test_connection_close_gets_the_whole_answer_then_the_close(gateway, route, key):
    body = orjson.dumps(chat_body(route))
    with _connect(gateway) as sock:
        sock.sendall(_raw_head(key, len(body), extra="connection: close\r\n") + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, answer = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
    assert orjson.loads(answer)["choices"][0]["message"]["content"].startswith("alpha:")


def test_expect_100_continue_and_a_query_string(gateway, route, key):
    body = orjson.dumps(chat_body(route))
    with _connect(gateway) as sock:
        sock.sendall(_raw_head(key, len(body), path="/v1/chat/completions?trace=1", extra="expect: 100-continue\r\n"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        ((head, answer),) = _read_responses(sock, 1)
    assert head.startswith(b"HTTP/1.1 200") and orjson.loads(answer)["choices"]


def test_oversize_body_on_a_raw_connection_is_413(gateway, key):
    body = b"x" * (5 * 1024 * 1024)
    with _connect(gateway) as sock:
        sock.sendall(_raw_head(key, len(body)))
        try:
            sock.sendall(body)  # the gateway may answer and close before taking it all
        except (BrokenPipeError, ConnectionResetError):
            pass
        ((head, answer),) = _read_responses(sock, 1)
    assert head.startswith(b"HTTP/1.1 413")
    assert orjson.loads(answer)["error"]["code"] == "request_too_large"


def _still_serves(gateway, route: str, key: str) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_raw_request(key, orjson.dumps(chat_body(route))))
        ((head, _),) = _read_responses(sock, 1)
    assert head.startswith(b"HTTP/1.1 200")


def test_chunked_request_body(gateway, route, key):
    body = orjson.dumps(chat_body(route, content="sent in pieces"))
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    chunked = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    head += f"authorization: Bearer {key}\r\ntransfer-encoding: chunked\r\n\r\n"
    with _connect(gateway) as sock:
        sock.sendall(head.encode())
        for piece in chunked[:40], chunked[40:]:  # the body arrives in two writes
            sock.sendall(piece)
            time.sleep(0.05)
        ((head, answer),) = _read_responses(sock, 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert orjson.loads(answer)["choices"][0]["message"]["content"].startswith("alpha:")


def test_a_client_leaving_mid_body_sends_nothing_upstream(gateway, upstreams, route, key):
    body = orjson.dumps(chat_body(route))
    with _connect(gateway) as sock:
        sock.sendall(_raw_head(key, len(body)) + body[: len(body) // 2])
        time.sleep(0.2)
    time.sleep(0.3)
    assert upstreams["alpha"].stats.requests == []
    _still_serves(gateway, route, key)


@pytest.mark.parametrize("size", [64 * 1024, 1024 * 1024])
def test_oversized_headers_are_refused_and_the_gateway_keeps_serving(gateway, route, key, size):
    body = orjson.dumps(chat_body(route))
    with _connect(gateway) as sock:
        try:
            sock.sendall(_raw_head(key, len(body), extra=f"x-padding: {'a' * size}\r\n") + body)
            received = b""
            while chunk := sock.recv(65536):  # the answer, then the close
                received += chunk
        except (BrokenPipeError, ConnectionResetError):
            received = b""
    # Refused with 431 in the OpenAI error body (or the connection cut before the answer was read): never served.
    assert received == b"" or received.startswith(b"HTTP/1.1 431"), received[:200]
    if received:
        assert b'"code":"headers_too_large"' in received
    _still_serves(gateway, route, key)
