"""A batch input file read line by line: each problem named with its line number, blank lines skipped but counted,
repeated custom_ids found; what upload, submission and the workers all read the same way."""

import orjson
import pytest

from llmops_gateway.batches import input as batch_input


def line(custom_id="a", url="/v1/chat/completions", **body) -> bytes:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"custom_id": "a", ', "not valid JSON"),
        (b'["a", "b"]', "must be a JSON object"),
        (b'{"method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}}', "custom_id must be a string"),
        (orjson.dumps({"custom_id": "", "method": "POST"}), "custom_id must be a string"),
        (orjson.dumps({"custom_id": "x" * 513, "method": "POST"}), "custom_id must be a string"),
        (orjson.dumps({"custom_id": 7, "method": "POST"}), "custom_id must be a string"),
        (orjson.dumps({"custom_id": "a", "method": "GET", "url": "/v1/embeddings", "body": {}}), "method must be POST"),
        (line(url="/v1/images/generations"), "url must be one of"),
        (orjson.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": []}), "body must be"),
        (orjson.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}), "with a model"),
        (line(stream=True), "stream is not supported"),
    ],
)
def test_each_problem_is_named_with_its_line_number(raw, problem):
    data = b"\n".join([line("first"), b"", raw, line("last")]) + b"\n"
    lines = batch_input.read_lines(data)
    assert [x.number for x in lines] == [1, 3, 4]  # the blank line is skipped, not renumbered
    bad = lines[1]
    assert bad.error.startswith("line 3: ") and problem in bad.error, bad.error
    assert bad.body is None and lines[0].error is None and lines[2].error is None


def test_a_good_line_is_a_request():
    (parsed,) = batch_input.read_lines(line("q1", max_tokens=7))
    assert (parsed.custom_id, parsed.url, parsed.error) == ("q1", "/v1/chat/completions", None)
    assert parsed.body["max_tokens"] == 7


def test_repeated_custom_ids_are_found_with_both_lines():
    data = b"\n".join([line("a"), line("b"), line("a"), b"not json", line("b")])
    repeats = batch_input.duplicate_custom_ids(batch_input.read_lines(data))
    assert repeats == [("a", 1, 3), ("b", 2, 5)]


def test_not_utf8_is_refused():
    with pytest.raises(UnicodeDecodeError):
        batch_input.read_lines(b'{"custom_id": "\xff"}')


def test_estimates_are_the_online_reservation():
    (chat,) = batch_input.read_lines(line(max_tokens=50))
    (no_max,) = batch_input.read_lines(line())
    (embed,) = batch_input.read_lines(line(url="/v1/embeddings", input=["abcd" * 10, "ab"]))
    (broken,) = batch_input.read_lines(b"{")
    assert batch_input.estimated_tokens(chat, default_max_tokens=512) == 3 + 4 + 1 + 50
    assert batch_input.estimated_tokens(no_max, default_max_tokens=512) == 3 + 4 + 1 + 512
    assert batch_input.estimated_tokens(embed, default_max_tokens=512) == 10 + 1
    assert batch_input.estimated_tokens(broken, default_max_tokens=512) == 0


def test_a_max_tokens_cap_lowers_the_estimate_as_online():
    """The key's and route's cap lowers max_tokens (and max_completion_tokens, which wins) as ``proxy.caps`` does."""
    reads = {
        "over": line(max_tokens=1000),
        "none": line(),
        "under": line(max_tokens=10),
        "newer_field": line(max_completion_tokens=1000, max_tokens=20),
        "n": line(max_tokens=1000, n=2),
    }
    lines = {name: batch_input.read_lines(raw)[0] for name, raw in reads.items()}
    estimate = {name: batch_input.estimate(x, default_max_tokens=512, cap=50) for name, x in lines.items()}
    assert estimate == {"over": (8, 50), "none": (8, 50), "under": (8, 10), "newer_field": (8, 50), "n": (8, 100)}
    assert batch_input.estimate(lines["over"], default_max_tokens=512) == (8, 1000)  # no cap
