"""Reading an OpenAI SSE stream as it passes through: the answer text and the final usage chunk."""

import orjson

from llmops_common.contracts.requestlog import MAX_SQL_INTEGER
from llmops_gateway.proxy.connection import UpstreamError, UpstreamTimeout, UpstreamTooLarge


def usage_of(value) -> dict | None:
    """An upstream's ``usage`` as the gateway counts it: token counts that are whole numbers from 0 to what the
    request log can store, else None (the accounting then estimates). A malformed usage must not break accounting,
    nor a negative one refund quota, nor an absurd one make the request's record undeliverable."""
    if not isinstance(value, dict):
        return None
    usage = {}
    for name in ("prompt_tokens", "completion_tokens"):
        count = value.get(name)
        if count is not None:
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_SQL_INTEGER:
                return None
            usage[name] = count
    details = value.get("prompt_tokens_details")  # cached prompt tokens are priced apart (spend)
    if usage and isinstance(details, dict):
        cached = details.get("cached_tokens")
        if isinstance(cached, int) and not isinstance(cached, bool) and 0 < cached <= usage.get("prompt_tokens", 0):
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage or None


class StreamTap:
    """Fed the raw bytes exactly as they go to the client; never changes them. An event is held until its end (a
    blank line: ``\\n\\n``, or ``\\r\\n\\r\\n`` as some SSE libraries write), so one over ``max_event_bytes`` (0: no
    limit) raises ``UpstreamTooLarge``: an upstream's endless line must not grow the gateway's memory."""

    __slots__ = ("_buffer", "_max_event", "chunks", "done", "finish_reasons", "parts", "usage")

    def __init__(self, max_event_bytes: int = 0) -> None:
        self._buffer = b""
        self._max_event = max_event_bytes
        self.parts: list[str] = []
        self.usage: dict | None = None
        self.chunks = 0  # content-bearing events, about one token each
        self.finish_reasons: list[str] = []  # one per choice, from the event that ends it (for the trace)
        self.done = False

    def cut(self) -> bool:
        """The stream breaks here. Whether it broke inside an event: the client is then sent a blank line first (or
        its parser would take the error event for part of that one), which makes it dispatch what it has of the
        event; so does the tap (a whole ``data:`` line in it counts, a cut one is no text)."""
        if not self._buffer:
            return False
        event, self._buffer = self._buffer, b""
        self._on_event(event)
        return True

    def feed(self, data: bytes) -> None:
        buffer, start, limit = self._buffer + data, 0, self._max_event
        crlf = b"\r" in buffer  # rare: most servers end their lines with a bare \n
        while True:
            end, gap = buffer.find(b"\n\n", start), 2
            if crlf and (found := buffer.find(b"\r\n\r\n", start, end if end >= 0 else len(buffer))) >= 0:
                end, gap = found, 4
            if end < 0 or (limit and end - start > limit):
                break
            self._on_event(buffer[start:end])
            start = end + gap
        self._buffer = buffer[start:]
        if limit and len(self._buffer) > limit:  # one event, ended or not, over the limit
            raise UpstreamTooLarge(f"an event of the upstream's stream is over {limit} bytes")

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
            # What an upstream sends is not trusted to be OpenAI's shape: an event that is not reads as no text.
            if not isinstance(chunk, dict):
                return
            if (usage := usage_of(chunk.get("usage"))) is not None:
                self.usage = usage
            choices = chunk.get("choices")
            for choice in choices if isinstance(choices, list) else ():
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta")
                text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
                if text and isinstance(text, str):
                    self.parts.append(text)
                    self.chunks += 1
                if (reason := choice.get("finish_reason")) and isinstance(reason, str):
                    self.finish_reasons.append(reason)

    @property
    def answer(self) -> str:
        return "".join(self.parts)


def stream_error(exc: UpstreamError, *, mid_event: bool = False) -> tuple[int, str, bytes]:
    """A stream that broke after its head went out: the status for the record, the breaker's failure kind, and
    the SSE error event the client gets last (too late for an error status). ``mid_event``: what was relayed ends
    inside an event, which a blank line ends first, or the client's parser would take the error for part of it."""
    if isinstance(exc, UpstreamTooLarge):
        status, kind, message, code = 502, "too_large", str(exc), "upstream_response_too_large"
    elif isinstance(exc, UpstreamTimeout):
        status, kind, message, code = (
            504,
            "stream_timeout",
            "upstream stream timed out: " + str(exc),
            "upstream_timeout",
        )
    else:
        status, kind, message, code = 502, "stream_broken", "upstream stream interrupted", "upstream_error"
    error = {"error": {"message": message, "type": "server_error", "code": code}}
    return status, kind, (b"\n\n" if mid_event else b"") + b"data: " + orjson.dumps(error) + b"\n\n"
