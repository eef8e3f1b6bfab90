"""A TCP proxy on loopback that can cut a server off the way a network partition does: silently.

``TcpProxy(host, port).start()`` forwards every connection to the server. ``blackhole()`` drops everything from then
on: connections are still accepted and what clients send is read, but nothing reaches the server and nothing comes
back, so a client's connect and its queries hang with no error (packets dropped, not refused). ``restore()`` ends
it: established connections carry bytes again (what was dropped stays dropped) and new ones reach the server; a
connection accepted during the blackhole never does. ``freeze_established()`` is the half of it that a failover or
a NAT table flush leaves: the connections open now go silent for good, new ones work.

``down()`` is the loud outage, what a stopped server leaves: every open connection is closed, and each new one is
closed as soon as it is accepted, so clients fail at once instead of hanging. ``restore()`` ends it too. Against a
server that takes seconds to start (MLflow: about 15 s), a test of "the server is gone, then back" spends nothing on
the restart.

The proxy runs its own event loop in a thread, so a test's synchronous code and the service processes it starts
can both use it.
"""

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Self

_CHUNK = 64 * 1024


class _Link:
    """One client connection; ``dead``: its bytes are dropped for good."""

    def __init__(self, dead: bool) -> None:
        self.dead = dead


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.blackholed = False
        self.is_down = False
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()  # the client side of every open connection

    def start(self) -> Self:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def blackhole(self) -> None:
        self._call(self._set(blackholed=True))

    def restore(self) -> None:
        self._call(self._set(blackholed=False, down=False))

    def down(self) -> None:
        self._call(self._go_down())

    def freeze_established(self) -> None:
        self._call(self._freeze())

    @contextlib.contextmanager
    def blackholed_for(self) -> Iterator[None]:
        """The blackhole for the ``with`` block's duration."""
        self.blackhole()
        try:
            yield
        finally:
            self.restore()

    @contextlib.contextmanager
    def down_for(self) -> Iterator[None]:
        """The server down for the ``with`` block's duration."""
        self.down()
        try:
            yield
        finally:
            self.restore()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _set(self, *, blackholed: bool, down: bool = False) -> None:
        self.blackholed, self.is_down = blackholed, down

    async def _go_down(self) -> None:
        self.is_down = True
        for writer in list(self._writers):  # what a stopped server does to its clients' pooled connections
            writer.close()

    async def _freeze(self) -> None:
        for link in self._links:
            link.dead = True

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_down:  # accepted and closed at once: the client sees its connection end, as if refused
            writer.close()
            return
        self._tasks.add(task := asyncio.current_task())
        link = _Link(dead=self.blackholed)
        self._links.add(link)
        self._writers.add(writer)
        try:
            if link.dead:  # accepted into the void: read until the client gives up
                await self._pipe(link, reader, None)
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(self._pipe(link, reader, up_writer), self._pipe(link, up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._links.discard(link)
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _pipe(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None) -> None:
        try:
            while data := await reader.read(_CHUNK):
                if writer is None or link.dead or self.blackholed:
                    continue  # dropped on the floor
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            if writer is not None:
                writer.close()  # one side ended: the other side's reader sees the end, and its pipe ends too
