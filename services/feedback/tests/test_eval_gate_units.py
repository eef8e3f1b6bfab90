"""The offline gate's pure parts on fixed cases: the pairwise parser, position swapping, the verdict's margin, eval
set versions, the MLflow table and the names of the routes the retraining loop's gate serves the arms by."""

import pytest

from llmops_feedback.evaluation import compare, pairwise, sets, tracking
from llmops_feedback.evaluation.schemas import EvalItem
from llmops_feedback.retraining.gate import route_name


@pytest.mark.parametrize(
    ("text", "winner"),
    [
        ('{"winner": "B", "rationale": "states the fact"}', "B"),
        ('{"winner": "tie", "rationale": "same"}', "tie"),
        ('Sure. {"winner": "a", "rationale": "x"}', "A"),
        ('{"winner": "A", "rationale": "cut o', "A"),
        ("B is better", None),
        ('{"winner": "C"}', None),
    ],
)
def test_pairwise_parser(text, winner):
    assert pairwise.parse(text) == winner


@pytest.mark.parametrize(
    ("first", "swapped", "outcome"),
    [
        ("B", "A", "win"),  # the challenger preferred in both positions
        ("A", "B", "loss"),  # the champion preferred in both positions
        ("A", "A", "tie"),  # always the first answer: position bias, no preference between the answers
        ("B", "B", "tie"),  # always the second answer
        ("B", "tie", "win"),
        ("tie", "B", "loss"),
        ("tie", "tie", "tie"),
        (None, "A", None),
    ],
)
def test_positions_are_swapped_and_position_bias_cancels(first, swapped, outcome):
    assert pairwise.combine(first, swapped) == outcome


def _rows(wins: int, ties: int, losses: int, failed: int = 0) -> list[dict]:
    outcomes = ["win"] * wins + ["tie"] * ties + ["loss"] * losses + [None] * failed
    return [{"outcome": o} for o in outcomes]


def test_the_verdict_blocks_only_past_the_margin():
    assert compare.decide(_rows(10, 80, 14), margin=0.05).verdict == "pass"  # losses lead by 3.8%
    blocked = compare.decide(_rows(10, 80, 16, failed=2), margin=0.05)  # 5.7%
    assert blocked.verdict == "block" and blocked.failed == 2 and "5.7%" in blocked.reason
    assert compare.decide(_rows(0, 0, 0, failed=3), margin=0.5).verdict == "block"  # nothing judged: never passes
    assert compare.decide(_rows(3, 0, 1), margin=0.0).verdict == "pass"


def test_eval_set_versions_follow_the_content():
    a = [
        EvalItem(question="Who founded Quenterby?", reference="Odalys Brenvik"),
        EvalItem(question="2+2?", reference="4"),
    ]
    same = [EvalItem(question="Who founded Quenterby?", reference="Odalys Brenvik", sources=[]), a[1]]
    assert sets.version_of(a) == sets.version_of(same)
    assert sets.version_of(a) != sets.version_of(a[::-1])  # order is part of a set
    assert sets.version_of(a) != sets.version_of([a[0], EvalItem(question="2+2?", reference="four")])
    assert sets.jsonl(a).decode().splitlines()[1] == '{"question":"2+2?","reference":"4"}'


def test_the_mlflow_table_has_a_row_per_question():
    rows = [{"question": "q", "reference": "r", "champion_answer": "a", "challenger_answer": "b", "outcome": "win",
             "detail": "d", "tokens": 3}]  # fmt: skip
    assert tracking.table(rows) == {
        "columns": tracking.table([])["columns"],
        "data": [["q", "r", "a", "b", "win", "d", 3]],
    }


def test_the_gate_route_names_stay_within_the_gateways_limit():
    assert route_name("r", "champion") == "r.gate-champion"
    assert len(route_name("x" * 128, "challenger")) == 128
