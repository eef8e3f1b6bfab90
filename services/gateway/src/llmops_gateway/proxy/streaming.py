"""A streaming response that notices a client disconnect at once, even while the upstream is silent."""

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class DisconnectAwareStream(StreamingResponse):
    """Starlette only notices a gone client when the next chunk fails to send; an upstream still
    queueing or thinking would then keep generating for nobody. Here a disconnect cancels the
    relay at once, and closing the body iterator closes the upstream connection."""

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
