"""Noticing a client that leaves, so an upstream (a model server) stops generating for nobody."""

import asyncio
from contextlib import asynccontextmanager

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class ClientDisconnected(Exception):
    pass


@asynccontextmanager
async def cancelled_on_disconnect(request: Request):
    """Cancels the body of the ``async with`` if the client disconnects meanwhile (raising ``ClientDisconnected``).

    Starlette does not cancel a handler whose client left: it would wait for a whole upstream answer nobody
    reads. Cancelling the upstream call closes its connection, which stops generation. Use it only after the
    request body has been read.
    """
    task = asyncio.current_task()
    disconnected = False

    async def watch() -> None:
        nonlocal disconnected
        while (await request.receive())["type"] != "http.disconnect":
            pass
        disconnected = True
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        if disconnected:
            raise ClientDisconnected() from None
        raise
    finally:
        watcher.cancel()


class DisconnectAwareStream(StreamingResponse):
    """Starlette only notices a gone client when the next chunk fails to send; an upstream still queueing or
    thinking would then keep generating for nobody. Here a disconnect cancels the relay at once, and closing
    the body iterator (an async generator that closes its upstream response) closes the upstream connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:
                        pass  # the client went away mid-send
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            await self.body_iterator.aclose()
