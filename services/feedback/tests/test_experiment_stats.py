"""The statistics and the decision rule of experiments on cases, and the policy's validation (the seeded
simulations of experiments looked at continuously are in test_experiment_simulations.py)."""

import dataclasses
import json
import math

import pytest

from llmops_feedback.experiments import stats
from llmops_feedback.experiments.policy import Action, ArmStats, ExperimentPolicy, decide, readout

POLICY = ExperimentPolicy()


def _decide(champion: ArmStats, challenger: ArmStats, **overrides) -> "object":
    arguments = {"planned_share": 0.5, "step_index": 2, "step_age_s": 3600.0, "age_s": 3600.0, "policy": POLICY}
    return decide(champion=champion, challenger=challenger, **(arguments | overrides))


def _arm(ratings: int, up: int, *, exposures: int | None = None, **extra) -> ArmStats:
    return ArmStats(
        exposures=exposures if exposures is not None else ratings * 5, ratings=ratings, thumbs_up=up, **extra
    )


# --- decisions, case by case ----------------------------------------------------------------------------------------


def test_clear_win_promotes():
    decision = _decide(_arm(600, 300), _arm(600, 400))
    assert decision.action is Action.PROMOTE
    assert decision.evidence["readout"]["difference"]["lower"] > 0
    assert "better" in decision.reason


def test_clear_win_promotes_from_the_first_step():
    decision = _decide(
        _arm(3000, 1500, exposures=19000), _arm(200, 150, exposures=1000), planned_share=0.05, step_index=0
    )
    assert decision.action is Action.PROMOTE


def test_clear_loss_rolls_back():
    decision = _decide(_arm(600, 400), _arm(600, 300))
    assert decision.action is Action.ROLLBACK
    assert decision.evidence["readout"]["difference"]["upper"] < 0


def test_too_few_ratings_waits_even_with_a_large_gap():
    decision = _decide(_arm(30, 5), _arm(30, 28))
    assert decision.action is Action.WAIT
    assert decision.evidence["enough_ratings"] is False
    needed = decision.evidence["readout"]["needed"]
    assert needed[0] >= 20 and needed[1] >= 20  # at least up to the policy's minimum per arm


def test_tie_at_max_duration_keeps_the_champion():
    decision = _decide(_arm(500, 250), _arm(500, 252), age_s=POLICY.max_duration_s)
    assert decision.action is Action.KEEP_CHAMPION
    assert _decide(_arm(500, 250), _arm(500, 252), age_s=POLICY.max_duration_s - 1).action is Action.WAIT


def test_broken_split_halts_before_anything_else():
    # 5% planned, 20% seen; the challenger also looks much better and errs more: the split is checked first.
    champion = _arm(400, 200, exposures=4000)
    challenger = _arm(100, 90, exposures=1000, errors=500)
    decision = _decide(champion, challenger, planned_share=0.05, step_index=0)
    assert decision.action is Action.HALT
    assert decision.evidence["srm"]["p_value"] < POLICY.srm_alpha


def test_split_is_not_checked_below_its_minimum_exposures():
    decision = _decide(_arm(10, 5, exposures=40), _arm(10, 5, exposures=40), planned_share=0.05, step_index=2)
    assert decision.evidence["srm"]["checked"] is False
    assert decision.action is not Action.HALT


def test_error_rate_guardrail_rolls_back_even_a_winner():
    champion = _arm(600, 300, exposures=3000, errors=30)
    challenger = _arm(600, 420, exposures=3000, errors=300)
    decision = _decide(champion, challenger)
    assert decision.action is Action.ROLLBACK
    assert "error rate" in decision.reason
    assert decision.evidence["guardrails"]["challenger_error_rate"] == pytest.approx(0.1)


def test_one_early_error_is_no_outage_but_every_answer_failing_is():
    early = {"planned_share": 0.05, "step_index": 0}
    one_error = _decide(_arm(0, 0, exposures=190), _arm(0, 0, exposures=10, errors=1), **early)
    assert one_error.action is Action.WAIT
    assert _decide(_arm(0, 0, exposures=95), _arm(0, 0, exposures=5, errors=5), **early).action is Action.ROLLBACK


def test_ttft_guardrail_needs_enough_exposures():
    champion = _arm(100, 50, exposures=1000, ttft_p95_ms=200.0)
    slow_early = _arm(2, 1, exposures=10, ttft_p95_ms=900.0)  # a cold adapter's first answers
    slow = _arm(20, 10, exposures=100, ttft_p95_ms=400.0)
    assert _decide(champion, slow_early, planned_share=0.01, step_index=0).action is Action.WAIT
    decision = _decide(champion, slow, planned_share=0.1, step_index=0)
    assert decision.action is Action.ROLLBACK
    assert decision.evidence["guardrails"]["ttft_p95_ratio"] == pytest.approx(2.0)


def _scores(mean: float, n: int = 10) -> stats.Moments:
    """``n`` judge scores all equal to ``mean``."""
    return stats.Moments(n, mean * n, mean * mean * n)


def test_judge_guardrail():
    policy = ExperimentPolicy(min_judge_score=0.7, judge_rubric="helpfulness")
    champion = _arm(100, 50, exposures=1000, judge=_scores(0.8))
    decision = _decide(champion, _arm(20, 10, exposures=100, judge=_scores(0.6)), planned_share=0.1, policy=policy)
    assert decision.action is Action.ROLLBACK and "judge" in decision.reason
    assert _decide(
        champion, _arm(20, 10, exposures=100, judge=_scores(0.75)), planned_share=0.1, policy=policy
    ).action is (Action.WAIT)


JUDGED = ExperimentPolicy(primary_metric="judge_score", judge_rubric="correctness")


def test_judge_score_as_primary_metric_decides_on_scores_not_thumbs():
    # Same thumbs up on both arms; the challenger's answers score 0.8 against the champion's 0.6 on 200 each.
    champion, challenger = _arm(600, 300, judge=_scores(0.6, 200)), _arm(600, 300, judge=_scores(0.8, 200))
    decision = _decide(champion, challenger, policy=JUDGED)
    assert decision.action is Action.PROMOTE and "correctness judge-score difference +0.200" in decision.reason
    shown = decision.evidence["readout"]
    assert shown["metric"] == "judge_score" and shown["champion"]["n"] == 200
    assert shown["champion"]["mean"] == pytest.approx(0.6) and "bounded means" in shown["method"]
    assert _decide(challenger, champion, policy=JUDGED).action is Action.ROLLBACK
    # Too few scores waits, whatever the thumbs say; the wait names what it needs.
    few = _decide(_arm(600, 100, judge=_scores(0.6, 20)), _arm(600, 500, judge=_scores(0.8, 20)), policy=JUDGED)
    assert few.action is Action.WAIT and "judge scores" in few.reason
    assert _decide(_arm(600, 100), _arm(600, 500), policy=JUDGED).evidence["readout"]["difference"] is None


def test_judge_score_confidence_sequence_reduces_to_the_thumbs_up_one_on_0_1_scores():
    thumbs = stats.sequential_difference(120, 300, 150, 280, alpha=0.05, tau=0.1)
    scores = stats.sequential_mean_difference(
        stats.Moments(300, 120, 120), stats.Moments(280, 150, 150), alpha=0.05, tau=0.1
    )
    p_a, p_b = 121 / 302, 151 / 282  # the smoothed rates (x+1)/(n+2)
    assert scores.variance == pytest.approx(p_a * (1 - p_a) / 300 + p_b * (1 - p_b) / 280, rel=1e-12)
    assert scores == thumbs
    # A spread-out score (half 0, half 1) has the widest variance; equal scores the narrowest, never 0.
    assert stats.Moments(100, 50, 50).smoothed_variance == pytest.approx(0.25)
    assert 0 < _scores(0.7, 100).smoothed_variance < 0.01
    assert stats.mean_interval(_scores(0.7, 100)) == pytest.approx((0.68, 0.72), abs=0.01)
    assert stats.mean_interval(stats.Moments()) is None


def test_ramps_when_guardrails_hold_and_the_step_is_old_enough():
    policy = ExperimentPolicy(min_step_duration_s=600)
    champion = _arm(40, 20, exposures=950, errors=5, ttft_p95_ms=200.0)
    challenger = _arm(2, 1, exposures=50, errors=0, ttft_p95_ms=220.0)
    arguments = {"planned_share": 0.05, "step_index": 0, "policy": policy, "age_s": 700.0}
    decision = _decide(champion, challenger, step_age_s=700.0, **arguments)
    assert decision.action is Action.RAMP and "5% to 25%" in decision.reason
    assert _decide(champion, challenger, step_age_s=500.0, **arguments).action is Action.WAIT  # step too young
    # Guardrails not yet checked (20 challenger exposures of the 30 needed): no ramp on ignorance.
    few = _decide(_arm(40, 20, exposures=380), _arm(0, 0, exposures=20), step_age_s=700.0, **arguments)
    assert few.action is Action.WAIT
    assert _decide(champion, challenger, step_age_s=700.0, **(arguments | {"step_index": 2})).action is Action.WAIT


def test_evidence_is_json_and_names_every_number():
    empty = _decide(_arm(0, 0, exposures=0), _arm(0, 0, exposures=0), step_index=0)
    assert empty.action is Action.WAIT
    json.dumps(empty.to_dict(), allow_nan=False)
    decision = _decide(_arm(100, 50, exposures=950), _arm(5, 3, exposures=50), planned_share=0.05, step_index=2)
    text = json.dumps(decision.to_dict(), allow_nan=False)
    for key in ("p_value", "lower", "upper", "needed", "srm", "ttft_p95_ratio", "max_error_rate_increase", "method"):
        assert key in text
    evidence = _decide(_arm(600, 300), _arm(600, 400)).evidence
    json.dumps(evidence, allow_nan=False)
    assert evidence["readout"]["difference"]["p_value"] <= POLICY.alpha


def test_step_index_outside_the_steps_is_refused():
    with pytest.raises(ValueError, match="step_index"):
        _decide(_arm(1, 1), _arm(1, 1), step_index=3)


# --- the statistics -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("up", "total", "low", "high"), [(8, 10, 0.4902, 0.9433), (50, 100, 0.4038, 0.5962)])
def test_wilson_known_values(up, total, low, high):
    assert stats.wilson_interval(up, total) == pytest.approx((low, high), abs=1e-4)
    assert stats.wilson_interval(0, 0) is None


def test_srm_p_value_is_the_chi_square_survival():
    scipy_stats = pytest.importorskip("scipy.stats")
    for a, b, share in [(480, 520, 0.5), (950, 50, 0.05), (900, 100, 0.05), (7, 3, 0.25)]:
        expected = scipy_stats.chisquare([a, b], [(a + b) * (1 - share), (a + b) * share]).pvalue
        assert stats.srm_p_value(a, b, share) == pytest.approx(expected, rel=1e-9)
    assert stats.srm_p_value(0, 0, 0.5) is None


def test_blended_share_weights_steps_by_exposures():
    assert stats.blended_share([0.05, 0.25], [1000, 3000]) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        stats.blended_share([0.05], [1, 2])


def test_confidence_sequence_and_p_value_agree():
    for up_b in range(20, 80, 3):
        d = stats.sequential_difference(100, 200, up_b, 100, alpha=0.05, tau=0.1)
        assert d.lower <= d.difference <= d.upper
        assert (d.p_value <= 0.05) == (d.lower > 0 or d.upper < 0)
    assert stats.sequential_difference(0, 0, 1, 1, alpha=0.05, tau=0.1) is None


def test_confidence_sequence_is_wider_than_the_fixed_horizon_interval():
    d = stats.sequential_difference(250, 500, 275, 500, alpha=0.05, tau=0.1)
    assert d.upper - d.lower > 2 * 1.96 * math.sqrt(d.variance)


def test_ratings_needed_reach_the_information_to_detect_the_effect():
    a, b = stats.ratings_needed(champion_up=0, champion_n=0, challenger_n=0, challenger_share=0.25, effect=0.1,
                                alpha=0.05, tau=0.1)  # fmt: skip
    assert b == pytest.approx(a / 3, rel=0.01)
    variance = 0.25 / a + 0.6 * 0.4 / b  # the rates the estimate assumes: 0.5 and 0.5 + effect
    half = stats.mixture_half_width(variance, alpha=0.05, tau=0.1)
    assert half + stats._z(0.8) * math.sqrt(variance) == pytest.approx(0.1, rel=0.01)
    done = stats.ratings_needed(champion_up=2000, champion_n=4000, challenger_n=4000, challenger_share=0.5,
                                effect=0.1, alpha=0.05, tau=0.1)  # fmt: skip
    assert done == (0, 0)
    assert stats.ratings_needed(champion_up=50, champion_n=100, challenger_n=100, challenger_share=0.5, effect=0.05,
                                alpha=0.05, tau=0.05)[0] > a  # fmt: skip


def test_fixed_horizon_z_known_value():
    assert stats.fixed_horizon_z(50, 100, 65, 100) == pytest.approx(2.1456, abs=1e-4)


def test_readout_for_display():
    shown = readout(champion=_arm(100, 50), challenger=_arm(0, 0), challenger_share=0.05, policy=POLICY)
    assert shown.champion.mean == 0.5 and shown.challenger.mean is None and shown.difference is None
    assert shown.needed[1] >= POLICY.min_ratings_per_arm
    json.dumps(shown.to_dict(), allow_nan=False)
    both = readout(champion=_arm(100, 50), challenger=_arm(40, 30), challenger_share=0.05, policy=POLICY)
    for each in (shown, both):  # to_dict skips asdict's deep copies, not a field
        assert each.to_dict() == dataclasses.asdict(each)


# --- the policy -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha", 0),
        ("alpha", 1.5),
        ("alpha", "0.05"),
        ("min_ratings_per_arm", 0),
        ("min_ratings_per_arm", 2.5),
        ("min_ratings_per_arm", True),
        ("min_detectable_effect", 0),
        ("max_duration_s", -1),
        ("steps", ()),
        ("steps", (0.25, 0.05)),
        ("steps", (0.05, 1.0)),
        ("min_step_duration_s", -5),
        ("max_error_rate_increase", 2),
        ("max_ttft_p95_ratio", 0.9),
        ("min_judge_score", 1.5),
        ("min_judge_score", 0.5),  # without judge_rubric: the rubric is named, never implied
        ("primary_metric", "clicks"),
        ("primary_metric", "judge_score"),  # without judge_rubric
        ("judge_rubric", "nope"),
        ("srm_alpha", 0),
        ("min_exposures_for_srm", -1),
        ("alpha", math.nan),
    ],
)
def test_policy_refuses_bad_values_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        ExperimentPolicy(**{field: value})


def test_policy_round_trips_through_a_plain_dict():
    policy = ExperimentPolicy(
        steps=[0.1, 0.5], min_judge_score=0.6, judge_rubric="helpfulness", min_step_duration_s=900
    )
    data = json.loads(json.dumps(policy.to_dict()))
    assert data["steps"] == [0.1, 0.5]
    assert ExperimentPolicy.from_dict(data) == policy
    assert ExperimentPolicy.from_dict({}) == ExperimentPolicy()
    with pytest.raises(ValueError, match="unknown field"):
        ExperimentPolicy.from_dict({"alpah": 0.1})
