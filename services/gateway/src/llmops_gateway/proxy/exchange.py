"""What the completion service needs from the server side of a request, and what it hands back.

Two servers implement ``Exchange``: the native HTTP protocol (``proxy.native``, what ``python -m llmops_gateway``
runs) and plain ASGI (``proxy.front``, for any other ASGI server). The service never touches either directly.
"""

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol


class Exchange(Protocol):
    request_id: str

    def header(self, name: bytes) -> str | None:
        """A request header by lower-case name."""

    async def body(self, max_bytes: int) -> bytes:
        """The whole request body; ``APIError`` 413 over ``max_bytes``."""

    def cancelled_on_disconnect(self) -> AbstractAsyncContextManager[None]:
        """Cancels its body if the client leaves meanwhile, raising ``ClientDisconnected`` instead."""


@dataclass(slots=True)
class Reply:
    """A response: ``body`` whole, or ``stream`` (an async generator, closed when the client leaves)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncGenerator[bytes] | None = None
