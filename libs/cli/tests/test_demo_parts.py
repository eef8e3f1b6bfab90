"""The demo's parts that need no platform: the bundled facts, the rating rule, the report and its plot."""

from datetime import UTC, datetime

import pytest

from llmops_cli.demo import report, run, timeline
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
    events += [{"t": 24.0, "kind": "job_submitted", "job_id": "job_1"}, {"t": 55.0, "kind": "adapter_served"}]
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
    assert "## Where the retraining time went" in text and "| inference served the adapter | 55 | 31 |" in text
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def _job(state: str, step: int, **fields) -> dict:
    """The trainer's ``GET /jobs/{id}`` as the demo polls it; the demo's clock started at 20:00:00 UTC."""
    job = {"id": "ftjob-1", "state": state, "created_at": "2026-12-06T20:01:02+00:00", "started_at": None,
           "finished_at": None, "attempt": 1, "served_model": "demo-abc@challenger", "registered_version": None,
           "progress": {"step": step, "total_steps": 36}}  # fmt: skip
    return job | fields


def test_the_retraining_wait_is_broken_into_the_jobs_phases():
    watch = timeline.JobWatch(datetime(2026, 12, 6, 20, 0, 0, tzinfo=UTC).timestamp())
    running = {"state": "running", "started_at": "2026-12-06T20:01:05+00:00"}
    done = running | {"state": "succeeded", "finished_at": "2026-12-06T20:05:40+00:00", "registered_version": "1"}
    polls = [
        (64.0, _job("queued", 0), False),
        (66.0, _job(**running, step=0), False),  # loading the base model: no step yet
        (150.0, _job(**running, step=4), False),
        (152.0, _job(**running, step=5), False),
        (310.0, _job(**running, step=36), False),
        (346.0, _job(**done, step=36), False),
        (348.0, _job(**done, step=36), False),  # inference has not loaded it yet
        (1500.0, _job(**done, step=36), True),
        (1502.0, _job(**done, step=36), True),
    ]
    events = [e for t, job, served in polls for e in watch.observe(job, t=t, served=served)]
    assert [(e["kind"], e["t"]) for e in events] == [
        ("job_submitted", 62.0),  # the trainer's own timestamps, on the demo's clock
        ("job_running", 65.0),
        ("first_step", 150.0),  # progress: when a poll first saw it
        ("last_step", 310.0),
        ("job_succeeded", 340.0),
        ("adapter_served", 1500.0),
    ]
    assert timeline.describe(events[2]) == "150 s: training under way (step 4 of 36)"
    events.append({"t": 1530.0, "kind": "experiment_started", "experiment_id": "exp_1"})
    lines = timeline.report_lines(events)
    assert lines[2] == "| the retraining policy submitted the job (queued) | 62 | - |"
    assert "| the job finished: the adapter saved and registered, version 1 | 340 | 30 |" in lines
    assert "| inference served the adapter | 1500 | 1160 |" in lines  # where the time went
    assert lines[-1].startswith("Training steps 4 to 36: 160 s, about 5.0 s a step")

    # A job that finished between two polls: its steps are placed no later than its end.
    quick = timeline.JobWatch(datetime(2026, 12, 6, 20, 0, 0, tzinfo=UTC).timestamp())
    kinds = {e["kind"]: e["t"] for e in quick.observe(_job(**done, step=36), t=400.0)}
    assert kinds == {"job_submitted": 62.0, "job_running": 65.0, "first_step": 340.0, "last_step": 340.0,
                     "job_succeeded": 340.0}  # fmt: skip
    assert timeline.report_lines([]) == []


class _StalledPolicy:
    """The platform as the demo sees it when one rating never became a training example: the policy waits."""

    status = "waiting: 19 new training examples of 20"

    def call(self, service: str, method: str, path: str, **_) -> dict:
        assert (service, method, path) == ("feedback", "GET", "/v1/retraining/demo-abc"), path
        return {"job_id": None, "experiment_id": None, "dataset_examples": 0, "status": self.status}


def test_a_stalled_loop_fails_the_demo_at_once_with_the_policys_status():
    shown: list[str] = []
    demo = run.Demo(_StalledPolicy(), run.FAST, sabotage=False, log=shown.append, progress=shown.append)
    demo.route = "demo-abc"
    with pytest.raises(RuntimeError, match="no training job within 1 s: waiting: 19 new training examples of 20"):
        demo.wait_for_canary(timeout_s=60, job_start_s=1)
    assert shown and set(shown) == {_StalledPolicy.status}  # what it waits for, on the progress line
