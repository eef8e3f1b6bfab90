"""The stream tap (proxy.sse.StreamTap): events found whatever their line ends, and one over the event limit."""

import orjson
import pytest

from llmops_gateway.proxy.connection import UpstreamTooLarge
from llmops_gateway.proxy.sse import StreamTap


def event(text: str, end: bytes = b"\n\n") -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}) + end


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n"])
def test_events_are_read_whatever_their_line_ends_and_however_they_are_split(end):
    stream = event("a ", end) + event("b ", end) + b'data: {"choices": [], "usage": {"prompt_tokens": 3}}' + end
    tap = StreamTap(max_event_bytes=200)
    for i in range(0, len(stream), 7):  # pieces that cut events anywhere
        tap.feed(stream[i : i + 7])
    tap.feed(b"data: [DONE]" + end)
    assert (tap.answer, tap.chunks, tap.usage, tap.done) == ("a b ", 2, {"prompt_tokens": 3}, True)
    assert not tap.cut()  # it ended between events


def test_an_event_over_the_limit_raises_whether_it_ended_or_not():
    with pytest.raises(UpstreamTooLarge, match="over 100 bytes"):
        StreamTap(max_event_bytes=100).feed(event("a ") + event("x" * 100))  # ended, in one piece
    tap = StreamTap(max_event_bytes=100)
    tap.feed(event("a ") + b"data: " + b"x" * 60)
    with pytest.raises(UpstreamTooLarge):
        tap.feed(b"x" * 60)  # not ended
    assert tap.chunks == 1


def test_a_stream_cut_inside_an_event_reads_what_the_client_parser_will_dispatch():
    tap = StreamTap()
    tap.feed(event("a ") + event("b ")[:-1])  # the second event's data line whole, its blank line not
    assert tap.cut() and tap.answer == "a b "
    tap = StreamTap()
    tap.feed(event("a ") + event("b ")[:20])  # cut inside the JSON: no text
    assert tap.cut() and tap.answer == "a "
