"""Dataset preparation, without services: line-by-line validation, scrubbing, deduplication, hashing, splitting."""

import json

import pytest

from llmops_trainer.datasets.validate import DatasetError, load_canonical, prepare, scrub, split


def line(*turns: tuple[str, str], **extra) -> str:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in turns], **extra})


GOOD = [
    line(("user", "hi"), ("assistant", "hello")),
    line(("system", "be brief"), ("user", "2+2?"), ("assistant", "4")),
    line(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"), metadata={"request_id": "r1"}),
]


def data(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def test_valid_lines_become_examples_with_role_and_content_only():
    dataset = prepare(data(*GOOD), max_examples=100)
    assert len(dataset.examples) == 3 and dataset.lines == 3 and dataset.duplicates == 0
    assert all(set(m) == {"role", "content"} for example in dataset.examples for m in example)
    assert load_canonical(dataset.canonical) == dataset.examples


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "JSON object"),
        ('{"messages": []}', "non-empty list"),
        (line(("user", "hi"), ("bot", "hello")), "messages[1].role must be one of system, user, assistant"),
        (line(("user", "hi")), "last message must be the assistant"),
        (line(("user", "hi"), ("system", "x"), ("assistant", "y")), "system message may only come first"),
        (line(("system", "x"), ("assistant", "y")), "needs a user message"),
        ('{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}', "non-empty string"),
        (line(("user", "   "), ("assistant", "x")), "non-empty string"),
    ],
)
def test_a_bad_line_is_named_with_what_is_wrong(bad, expected):
    with pytest.raises(DatasetError) as caught:
        prepare(data(GOOD[0], "", GOOD[1], bad), max_examples=100)  # the blank line still counts as line 2
    message = str(caught.value)
    assert message.startswith("line 4: ") and expected in message, message
    assert caught.value.errors[0][0] == 4


def test_every_bad_line_is_counted_and_the_first_ten_named():
    lines = [GOOD[0]] + ["{oops"] * 12
    with pytest.raises(DatasetError) as caught:
        prepare(data(*lines), max_examples=100)
    assert [n for n, _ in caught.value.errors] == list(range(2, 12))
    assert str(caught.value).endswith("and 2 more bad lines")


def test_lenient_mode_skips_bad_lines_and_counts_them():
    dataset = prepare(data(GOOD[0], "{oops", GOOD[1]), max_examples=100, strict=False)
    assert len(dataset.examples) == 2 and dataset.invalid == 1 and dataset.first_errors[0].startswith("line 2:")
    with pytest.raises(DatasetError, match="line 1"):
        prepare(b"{oops\n", max_examples=100, strict=False)  # nothing left to train on


def test_empty_and_oversized_datasets_are_refused():
    with pytest.raises(DatasetError, match="no examples"):
        prepare(b"\n\n", max_examples=100)
    with pytest.raises(DatasetError, match="more than 2 examples"):
        prepare(data(*GOOD), max_examples=2)


def test_duplicates_are_dropped_and_the_hash_names_the_set_of_examples():
    first = prepare(data(GOOD[0], GOOD[1], GOOD[0], GOOD[2]), max_examples=100)
    reordered = prepare(data(GOOD[2], GOOD[1], GOOD[0]), max_examples=100)
    assert first.duplicates == 1 and len(first.examples) == 3
    assert first.sha256 == reordered.sha256 and first.canonical == reordered.canonical
    assert prepare(data(GOOD[0], GOOD[1]), max_examples=100).sha256 != first.sha256
    # Formatting and ignored keys do not change an example: the same examples, the same hash.
    spaced = json.dumps(json.loads(GOOD[0]), indent=2).replace("\n", " ")
    assert prepare(data(spaced, GOOD[1], GOOD[2]), max_examples=100).sha256 == first.sha256


def test_emails_and_phone_numbers_are_scrubbed_before_dedup_and_hashing():
    a = line(("user", "mail bob@example.com or call +1 (555) 123-4567"), ("assistant", "ok"))
    b = line(("user", "mail alice@corp.example.org or call 555-987-6543"), ("assistant", "ok"))
    dataset = prepare(data(a, b), max_examples=100)
    assert dataset.scrubbed == 2 and dataset.duplicates == 1  # the same example once contacts are gone
    assert dataset.examples == [
        [{"role": "user", "content": "mail [EMAIL] or call [PHONE]"}, {"role": "assistant", "content": "ok"}]
    ]
    assert b"example.com" not in dataset.canonical and b"555" not in dataset.canonical


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("write to john.doe+tag@mail.example.co.uk today", "write to [EMAIL] today"),
        ("Tel: 06 12 34 56 78", "Tel: [PHONE]"),
        ("+44 20 7946 0958", "[PHONE]"),
        ("+33612345678 or 5551234567", "[PHONE] or [PHONE]"),
        ("call (555) 123 4567.", "call [PHONE]."),
    ],
)
def test_scrub_replaces_contacts(text, scrubbed):
    assert scrub(text) == scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "in 2024 we grew 12%",
        "on 2024-01-15 at 10:30",
        "version 1.2.3",
        "host 192.168.10.12",
        "pi is 3.14159",
        "order 12345",
        "a@b is not an address",
    ],
)
def test_scrub_leaves_other_numbers_and_text_alone(text):
    assert scrub(text) == text


def test_split_is_seeded_and_keeps_at_least_one_example_on_each_side():
    examples = list(range(20))
    train, evaluation = split(examples, eval_fraction=0.1, seed=7)
    assert len(evaluation) == 2 and sorted(train + evaluation) == examples
    assert split(examples, eval_fraction=0.1, seed=7) == (train, evaluation)
    assert split(examples, eval_fraction=0.1, seed=8) != (train, evaluation)
    assert len(split(examples[:3], eval_fraction=0.1, seed=0)[1]) == 1
    assert split(examples[:1], eval_fraction=0.5, seed=0) == ([0], [])
    assert split(examples, eval_fraction=0, seed=0)[1] == []
