"""Putting the sources event into a relayed SSE stream, just before the upstream's ``data: [DONE]``."""

_DONE = b"data: [DONE]"


def _partial_marker(buffer: bytes) -> int:
    """How many trailing bytes of ``buffer`` could be the start of the [DONE] event (held back until known)."""
    for n in range(min(len(_DONE) - 1, len(buffer)), 0, -1):
        if _DONE.startswith(buffer[-n:]):
            return n
    return 0


class DoneInjector:
    """Passes bytes through unchanged and unbuffered, except the few that might begin ``data: [DONE]``.

    The marker counts only at the start of a line (where SSE events start), so the same text inside a JSON
    string of a content chunk is not mistaken for it.
    """

    def __init__(self, event: bytes) -> None:
        self._event = event
        self._held = b""
        self._line_start = True  # the stream so far ends at a line start
        self.injected = False

    def feed(self, data: bytes) -> bytes:
        if self.injected:
            return data
        buffer, start = self._held + data, 0
        while (found := buffer.find(_DONE, start)) >= 0:
            if (found == 0 and self._line_start) or buffer[found - 1 : found] == b"\n":
                self.injected, self._held = True, b""
                return buffer[:found] + self._event + buffer[found:]
            start = found + 1
        keep = _partial_marker(buffer)
        if keep and not ((len(buffer) - keep == 0 and self._line_start) or buffer[-keep - 1 : -keep] == b"\n"):
            keep = 0  # not at a line start: cannot become the marker
        out, self._held = buffer[: len(buffer) - keep], buffer[len(buffer) - keep :]
        if out:
            self._line_start = out.endswith(b"\n")
        return out

    def finish(self) -> bytes:
        """At the end of a stream that never sent [DONE]: whatever was held back, then the event."""
        if self.injected:
            return b""
        self.injected = True
        return self._held + self._event
