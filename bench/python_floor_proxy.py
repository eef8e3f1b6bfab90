"""The least any Python proxy can cost here: a reference for the gateway benchmark, not a product.

uvloop + httptools on both sides, keep-alive connections to one upstream reused LIFO, the request body and
the answer passed through untouched, each response written in one write. No authentication, validation,
routing, quotas, metrics or request log: what the gateway adds on top of this is the price of its features.

    python bench/python_floor_proxy.py --port 8100 --upstream-port 8001
"""

import argparse
import asyncio
import socket

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    """One kept-alive connection to the upstream; one exchange at a time."""

    def __init__(self, pool: list) -> None:
        self.pool, self.parser = pool, httptools.HttpResponseParser(self)
        self.transport = self.reply = None

    def connection_made(self, transport) -> None:
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def exchange(self, raw: bytes, reply) -> None:
        self.reply, self.body = reply, []
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        head = b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        reply, self.reply = self.reply, None
        self.pool.append(self)
        reply(head % (self.parser.get_status_code(), len(body)) + body)


class Front(asyncio.Protocol):
    def __init__(self, upstream: tuple[str, int], pool: list) -> None:
        self.upstream, self.pool, self.parser = upstream, pool, httptools.HttpRequestParser(self)

    def connection_made(self, transport) -> None:
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.body = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        raw = b"POST /v1/chat/completions HTTP/1.1\r\nhost: upstream\r\ncontent-type: application/json\r\n"
        raw += b"content-length: %d\r\n\r\n%b" % (len(body), body)
        if self.pool:
            self.pool.pop().exchange(raw, self.transport.write)
        else:
            asyncio.ensure_future(self._connect_and_send(raw))

    async def _connect_and_send(self, raw: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: Upstream(self.pool), *self.upstream)
        conn.exchange(raw, self.transport.write)


async def serve(port: int, upstream_port: int) -> None:
    pool: list[Upstream] = []
    server = await asyncio.get_running_loop().create_server(
        lambda: Front(("127.0.0.1", upstream_port), pool), "127.0.0.1", port, backlog=1024
    )
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream_port))


if __name__ == "__main__":
    main()
