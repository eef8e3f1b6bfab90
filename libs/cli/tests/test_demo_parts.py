"""The demo's parts that need no platform: the bundled facts, the rating rule, the report and its plot."""

from llmops_cli.demo import report
from llmops_cli.demo.items import demo_items, documents, facts, rate


def test_the_bundled_facts_are_complete_and_each_in_one_document():
    items = facts()
    assert len(items) >= 24 and len({i.id for i in items}) == len(items)
    texts = [d["text"] for d in documents()]
    assert len(texts) >= 48  # facts and as many distractors
    for item in items:
        assert len(item.questions) == 3 and item.held_out_question not in item.training_questions
        assert item.expected.casefold() in item.answer.casefold()
        assert item.expected.casefold() not in item.wrong.casefold()
        assert sum(item.expected.casefold() in t.casefold() for t in texts) == 1, item.id


def test_the_rating_rule():
    item = next(i for i in facts() if i.id == "verrinow-keeper")
    assert rate(item, "It is kept by  odalys BRENN, since 1998.") == ("up", None)
    assert rate(item, "I do not know.") == ("down", item.answer)
    assert rate(item, "Odalys Brenn.", saboteur=True) == ("down", item.wrong)
    fast = demo_items(8)
    assert len(fast) == 8 + 2 and len(demo_items(24)) == 24 + 8


def _experiment(status: str) -> dict:
    arm = {"arm": "champion", "variant": "base", "version": None, "exposures": 20, "ratings": 20, "thumbs_up": 5}
    arms = [arm | {"up_rate": 0.25}, arm | {"arm": "challenger", "variant": "challenger", "version": "1",
                                              "thumbs_up": 18, "up_rate": 0.9}]  # fmt: skip
    decision = {"action": "promote", "reason": "better", "evidence": {"p_value": 0.001}}
    return {"status": status, "readout": {"arms": arms}, "decisions": [{"action": "start", "evidence": {}}, decision]}


def test_the_report_names_the_decision_and_draws_the_arms(tmp_path):
    events = [
        {"t": 1.0 + i, "kind": "rating", "phase": "collect", "arm": "base", "rating": "up" if i % 4 == 0 else "down"}
        for i in range(20)
    ]
    events += [{"t": 25.0, "kind": "job_started", "job_id": "job_1", "examples": 20}]
    events += [{"t": 60.0, "kind": "experiment_started", "experiment_id": "exp_1"}]
    events += [
        {"t": 61.0 + i, "kind": "rating", "phase": "canary", "arm": "challenger", "rating": "up"} for i in range(10)
    ]
    events += [{"t": 80.0, "kind": "decision", "action": "promote", "reason": "better", "actor": "controller"}]
    answers = [
        {"phase": "canary", "arm": arm, "item": "x", "question": "Who keeps it?", "answer": text, "rating": r}
        for arm, text, r in (("base", "No idea.", "down"), ("challenger", "Odalys Brenn.", "up"))
    ]
    summary = {
        "route": "demo-abc",
        "mode": "honest",
        "items": 10,
        "seconds": 90.0,
        "experiment": _experiment("promoted"),
    }
    md, png = report.write(tmp_path, events=events, answers=answers, summary=summary)
    text = md.read_text()
    assert "the challenger was promoted" in text and "**promote** by controller" in text
    assert "- challenger (up): Odalys Brenn." in text and "job_1" in text
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
