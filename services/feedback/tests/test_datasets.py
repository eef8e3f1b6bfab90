"""Training data from the request log: SFT examples (thumbs-up answers and corrections) and preference pairs,
as JSONL in the conversational format TRL's SFTTrainer and DPOTrainer take."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

ROLES = {"system", "user", "assistant"}


def _is_conversation(messages) -> bool:
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(
            isinstance(m, dict)
            and set(m) == {"role", "content"}
            and m["role"] in ROLES
            and isinstance(m["content"], str)
            for m in messages
        )
    )


def assert_trl_sft(example: dict) -> None:
    """TRL's conversational language-modeling format: ``messages``, ending in the assistant turn to learn."""
    assert _is_conversation(example["messages"]), example
    assert example["messages"][-1]["role"] == "assistant"
    assert example["messages"][-2]["role"] == "user"


def assert_trl_preference(example: dict) -> None:
    """TRL's conversational preference format with an explicit prompt: lists of messages, one assistant turn each."""
    assert _is_conversation(example["prompt"]) and example["prompt"][-1]["role"] == "user", example
    for side in ("chosen", "rejected"):
        assert _is_conversation(example[side]) and [m["role"] for m in example[side]] == ["assistant"], example
    assert example["chosen"] != example["rejected"]


def _by_request(lines: list[dict]) -> dict[str, dict]:
    ids = [line["metadata"]["request_id"] for line in lines]
    assert len(ids) == len(set(ids)), ids
    return dict(zip(ids, lines, strict=True))


def test_sft_has_thumbs_up_answers_and_corrections_only(make_record, ingest, rate, export, route):
    now = time.time()
    up, down, corrected, text, failed, failed_with_text, _unrated, changed_mind = records = [
        make_record(started_at=now - 100 + i) for i in range(8)
    ]
    text.update(kind="text", prompt="Once upon a time", answer=" there was a fox.")
    failed.update(status=502, answer=None, error="upstream down")
    failed_with_text.update(status=500, answer="half an ans")
    ingest(*records)
    rate(up["request_id"], "up")
    rate(down["request_id"], "down", comment="wrong")
    rate(corrected["request_id"], "down", correction="The corrected answer.")
    rate(text["request_id"], "up")
    rate(failed["request_id"], "up", correction="a correction of a failure")
    rate(failed_with_text["request_id"], "up")
    rate(changed_mind["request_id"], "up")
    rate(changed_mind["request_id"], "down")

    lines = export("sft", route=route)
    for line in lines:
        assert_trl_sft(line)
    assert [line["metadata"]["request_id"] for line in lines] == [r["request_id"] for r in (up, corrected, text)]
    by_id = _by_request(lines)
    assert by_id[up["request_id"]]["messages"] == [*up["prompt"], {"role": "assistant", "content": up["answer"]}]
    assert by_id[corrected["request_id"]]["messages"] == [
        *corrected["prompt"],
        {"role": "assistant", "content": "The corrected answer."},
    ]
    assert by_id[text["request_id"]]["messages"] == [
        {"role": "user", "content": "Once upon a time"},
        {"role": "assistant", "content": " there was a fox."},
    ]
    assert [line["metadata"]["source"] for line in lines] == ["thumbs_up", "correction", "thumbs_up"]
    assert all(line["metadata"]["route"] == route and line["metadata"]["variant"] == "a" for line in lines)


def test_a_correction_on_a_thumbs_up_replaces_the_answer(make_record, ingest, rate, export, route):
    record = make_record()
    ingest(record)
    rate(record["request_id"], "up", correction="Even better.")
    [line] = export("sft", route=route)
    assert line["messages"][-1] == {"role": "assistant", "content": "Even better."}


def test_filters_by_route_variant_and_time(make_record, ingest, rate, export, route):
    now = time.time()
    a_old = make_record(variant="a", started_at=now - 7200)
    a_new = make_record(variant="a", started_at=now - 60)
    b_new = make_record(variant="b", started_at=now - 30)
    elsewhere = make_record(route=f"{route}-other", started_at=now - 30)
    ingest(a_old, a_new, b_new, elsewhere)
    for record in (a_old, a_new, b_new, elsewhere):
        rate(record["request_id"], "up")

    def ids(kind="sft", **params) -> list[str]:
        return [line["metadata"]["request_id"] for line in export(kind, route=route, **params)]

    assert ids() == [a_old["request_id"], a_new["request_id"], b_new["request_id"]]
    assert ids(variant="a") == [a_old["request_id"], a_new["request_id"]]
    assert ids(variant="b") == [b_new["request_id"]]
    assert ids(since="1970-01-01T00:00:00Z") == ids()
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    assert ids(since=since) == [a_new["request_id"], b_new["request_id"]]
    assert ids(until=since) == [a_old["request_id"]]
    assert ids(variant="a", since=since) == [a_new["request_id"]]
    assert ids(variant="nobody") == []
    assert [line["metadata"]["request_id"] for line in export("sft", route=f"{route}-other")] == [
        elsewhere["request_id"]
    ]


@pytest.mark.parametrize("kind", ["sft", "preference"])
def test_naive_times_are_422(admin, expect_error, kind):
    response = admin.get(f"/v1/datasets/{kind}", params={"since": "2026-01-01T00:00:00"})
    expect_error(response, 422, type="invalid_request_error")


def test_unknown_dataset_kind_is_4xx(admin):
    response = admin.get("/v1/datasets/rlhf")
    assert response.status_code in (404, 422) and "error" in response.json()


def test_preference_pairs_where_both_sides_exist(make_record, ingest, rate, export, route):
    now = time.time()

    def asked(prompt: list[dict], answer: str, at: float) -> dict:
        return make_record(prompt=prompt, answer=answer, started_at=now - 100 + at)

    shared = [{"role": "user", "content": f"Capital of France? ({route})"}]
    liked, disliked = asked(shared, "Paris.", 1), asked(shared, "Lyon.", 2)
    corrected = make_record(started_at=now - 90)
    only_up = [asked([{"role": "user", "content": f"only up {route}"}], f"answer {i}", 10 + i) for i in range(2)]
    only_down = asked([{"role": "user", "content": f"only down {route}"}], "meh", 20)
    same_correction = make_record(started_at=now - 70)
    other_system = asked([{"role": "system", "content": "Be terse."}, *shared], "Marseille.", 30)
    records = [liked, disliked, corrected, *only_up, only_down, same_correction, other_system]
    ingest(*records)
    rate(liked["request_id"], "up")
    rate(disliked["request_id"], "down")
    rate(corrected["request_id"], "down", correction="The right answer.")
    for record in only_up:
        rate(record["request_id"], "up")
    rate(only_down["request_id"], "down")
    rate(same_correction["request_id"], "up", correction=same_correction["answer"])
    rate(other_system["request_id"], "down")  # another prompt (a system turn): no partner for it

    lines = export("preference", route=route)
    for line in lines:
        assert_trl_preference(line)
    pairs = {
        (line["metadata"]["source"], line["chosen"][0]["content"], line["rejected"][0]["content"]): line
        for line in lines
    }
    assert set(pairs) == {("thumbs", "Paris.", "Lyon."), ("correction", "The right answer.", corrected["answer"])}
    assert len(lines) == 2
    assert pairs[("thumbs", "Paris.", "Lyon.")]["prompt"] == shared
    assert pairs[("correction", "The right answer.", corrected["answer"])]["prompt"] == corrected["prompt"]


def test_preference_pairs_on_text_completions(make_record, ingest, rate, export, route):
    good = make_record(kind="text", prompt=f"Roses are red, {route}", answer=" violets are blue")
    bad = make_record(kind="text", prompt=f"Roses are red, {route}", answer=" sugar is salty")
    ingest(good, bad)
    rate(bad["request_id"], "down")
    rate(good["request_id"], "up")
    [line] = export("preference", route=route)
    assert_trl_preference(line)
    assert line["prompt"] == [{"role": "user", "content": f"Roses are red, {route}"}]
    assert (line["chosen"][0]["content"], line["rejected"][0]["content"]) == (" violets are blue", " sugar is salty")


@pytest.mark.parametrize("order", [("up", "down", "down"), ("down", "down", "up"), ("down", "up", "down")])
def test_every_thumbs_down_answer_pairs_with_the_first_thumbs_up_whatever_the_order(
    make_record, ingest, rate, export, route, order
):
    now, prompt = time.time(), [{"role": "user", "content": f"pair order {route}"}]
    records = [make_record(prompt=prompt, answer=f"answer {i}", started_at=now - 10 + i) for i in range(3)]
    ingest(*records)
    for record, rating in zip(records, order, strict=True):
        rate(record["request_id"], rating)
    good = records[order.index("up")]["answer"]
    bad = sorted(r["answer"] for r, rating in zip(records, order, strict=True) if rating == "down")
    lines = export("preference", route=route)
    assert sorted((line["chosen"][0]["content"], line["rejected"][0]["content"]) for line in lines) == [
        (good, answer) for answer in bad
    ]


@pytest.mark.parametrize(
    "prompt",
    [
        pytest.param("a chat prompt sent as a plain string", id="string"),
        pytest.param([{"content": "a message without a role"}], id="message-without-role"),
        pytest.param(["plain", "strings"], id="list-of-strings"),
    ],
)
def test_an_odd_chat_prompt_is_refused_or_exported_never_breaks_the_export(
    own_feedback, make_record, rate, export, prompt
):
    """The ingest schema takes any list or string as a prompt; whatever it takes must not poison every later export
    (on a service of its own: what it takes here could break other tests' exports)."""
    odd, normal = make_record(prompt=prompt), make_record()
    with own_feedback.ingest() as ingester, own_feedback.admin() as admin:
        response = ingester.post("/v1/requests", json={"records": [odd]})
        assert response.status_code in (200, 422), response.text
        ingester.post("/v1/requests", json={"records": [normal]}).raise_for_status()
        for record in (odd, normal) if response.status_code == 200 else (normal,):
            rate(record["request_id"], "up", client=admin)
        lines = export("sft", client=admin)
    assert normal["request_id"] in {line["metadata"]["request_id"] for line in lines}
    for line in lines:
        assert_trl_sft(line)


def test_a_large_export_streams_every_line(feedback, make_record, ingest, rate, export, route):
    records = [make_record(answer=f"answer number {i}") for i in range(520)]  # more than one fetch of 500 rows
    ingest(*records)

    def rate_up(share: list[dict]) -> None:  # a client per thread: the ratings arrive four at a time
        with feedback.admin() as client:
            for record in share:
                rate(record["request_id"], "up", client=client)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(rate_up, [records[i::4] for i in range(4)]))
    lines = export("sft", route=route)
    assert len(lines) == 520
    assert {line["messages"][-1]["content"] for line in lines} == {r["answer"] for r in records}
