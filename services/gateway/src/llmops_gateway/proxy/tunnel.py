"""A connection to an HTTP proxy until it answers CONNECT: TLS to the upstream then takes the transport over (the
pool, ``proxy.client.UpstreamClient``, does the TLS upgrade)."""

import asyncio
import socket

from llmops_gateway.proxy.connection import UpstreamConnectError
from llmops_gateway.proxy.origins import Origin


class Tunnel(asyncio.Protocol):
    """A connection to a proxy until it answers CONNECT; TLS to the upstream then takes it over."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future = asyncio.get_running_loop().create_future()  # the proxy's response head
        self.buffer = b""

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.answer.done():
            return
        if b"\r\n\r\n" in self.buffer:
            self.answer.set_result(self.buffer)
        elif len(self.buffer) > 65536:
            self.answer.set_exception(ConnectionError("the proxy's answer to CONNECT has no end"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(ConnectionError("the proxy closed the connection"))

    async def open(self, origin: Origin) -> asyncio.Transport:
        """Asks the proxy for a tunnel to the origin; returns the transport once it is open."""
        proxy = origin.proxy
        request = f"CONNECT {origin.authority} HTTP/1.1\r\nhost: {origin.authority}\r\n".encode()
        if proxy.authorization:
            request += b"proxy-authorization: " + proxy.authorization + b"\r\n"
        self.transport.write(request + b"\r\n")
        head = await self.answer
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        status = status_line.split(" ", 2)[1] if status_line.count(" ") >= 1 else ""
        if not (status.isdigit() and 200 <= int(status) < 300):
            hint = " (the proxy wants credentials: user:password in the proxy URL)" if status == "407" else ""
            raise UpstreamConnectError(
                f"proxy {proxy.url} refused CONNECT to {origin.authority}: {status_line!r}{hint}"
            )
        if not head.endswith(b"\r\n\r\n"):
            raise UpstreamConnectError(f"proxy {proxy.url} sent data before the tunnel to {origin.authority} opened")
        return self.transport
