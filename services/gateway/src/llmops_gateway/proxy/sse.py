"""Reading an OpenAI SSE stream as it passes through: the answer text and the final usage chunk."""

import orjson


class StreamTap:
    """Fed the raw bytes exactly as they go to the client; never changes them."""

    __slots__ = ("_buffer", "chunks", "done", "parts", "usage")

    def __init__(self) -> None:
        self._buffer = b""
        self.parts: list[str] = []
        self.usage: dict | None = None
        self.chunks = 0  # content-bearing events, about one token each
        self.done = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return
            event, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            self._on_event(event)

    def _on_event(self, event: bytes) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                return
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
                if text:
                    self.parts.append(text)
                    self.chunks += 1

    @property
    def answer(self) -> str:
        return "".join(self.parts)
