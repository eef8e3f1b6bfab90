"""The test of the test: the decision rule on thousands of seeded experiments looked at continuously, as the
controller looks: false promotions of A/A experiments at or below alpha (where a peeked z test breaks its promise),
and the power at the horizon, for thumbs up and for judge scores."""

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from llmops_feedback.experiments import stats
from llmops_feedback.experiments.policy import Action, ArmStats, ExperimentPolicy, decide

# --- the test of the test: experiments looked at continuously -------------------------------------------------------

LOOK_S = 30  # the controller's period
EXPOSURES_PER_LOOK = 100
RATING_RATE = 0.2  # about 20 ratings per look
LOOKS = 50
SIM_POLICY = ExperimentPolicy(min_step_duration_s=10 * LOOK_S, max_duration_s=LOOKS * LOOK_S)


@dataclass
class Outcomes:
    actions: list[Action]
    z_promoted: np.ndarray  # a fixed-horizon z test read at the same looks promoted


def _simulate(p_champion: float, p_challenger: float, experiments: int, seed: int) -> Outcomes:
    """Closed loop: every look, the arms get ~100 exposures split at the current step's share (a 5% canary first),
    ~20% are rated, and ``decide`` runs; a RAMP moves to the next step, any other action but WAIT ends the run."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((experiments, 2, 3), dtype=np.int64)  # [experiment, arm, (exposures, ratings, up)]
    step = np.zeros(experiments, dtype=np.int64)
    step_start = np.zeros(experiments, dtype=np.int64)
    step_exposures = np.zeros((experiments, len(SIM_POLICY.steps)), dtype=np.int64)
    actions = [Action.WAIT] * experiments
    z_promoted = np.zeros(experiments, dtype=bool)
    z_stopped = np.zeros(experiments, dtype=bool)
    rates = np.array([p_champion, p_challenger])
    shares = np.array(SIM_POLICY.steps)
    z_crit = stats._z(1 - SIM_POLICY.alpha / 2)
    for look in range(1, LOOKS + 1):
        to_challenger = rng.binomial(EXPOSURES_PER_LOOK, shares[step])
        exposures = np.stack([EXPOSURES_PER_LOOK - to_challenger, to_challenger], axis=1)
        ratings = rng.binomial(exposures, RATING_RATE)
        counts[:, :, 0] += exposures
        counts[:, :, 1] += ratings
        counts[:, :, 2] += rng.binomial(ratings, rates)
        step_exposures[np.arange(experiments), step] += EXPOSURES_PER_LOOK
        for i in range(experiments):
            (ea, na, ua), (eb, nb, ub) = counts[i].tolist()
            if min(na, nb) >= SIM_POLICY.min_ratings_per_arm and not z_stopped[i]:
                z = stats.fixed_horizon_z(ua, na, ub, nb)  # peeking: the first |z| > z_crit stops the run
                z_stopped[i], z_promoted[i] = abs(z) > z_crit, z > z_crit
            if actions[i] not in (Action.WAIT, Action.RAMP):
                continue
            actions[i] = decide(
                champion=ArmStats(exposures=ea, ratings=na, thumbs_up=ua),
                challenger=ArmStats(exposures=eb, ratings=nb, thumbs_up=ub),
                planned_share=stats.blended_share(SIM_POLICY.steps, step_exposures[i].tolist()),
                step_index=int(step[i]),
                step_age_s=(look - step_start[i]) * LOOK_S,
                age_s=look * LOOK_S,
                policy=SIM_POLICY,
            ).action
            if actions[i] is Action.RAMP:
                step[i] += 1
                step_start[i] = look
    return Outcomes(actions, z_promoted)


def test_a_a_false_promotions_stay_below_alpha_where_peeking_at_a_z_test_does_not():
    outcomes = _simulate(0.5, 0.5, experiments=2000, seed=20260601)
    promoted = sum(a is Action.PROMOTE for a in outcomes.actions) / 2000
    halted = sum(a is Action.HALT for a in outcomes.actions) / 2000
    peeked = outcomes.z_promoted.mean()
    print(f"A/A, 2000 experiments, {LOOKS} looks: always-valid false promotions {promoted:.3f}, "
          f"peeking z-test {peeked:.3f}, SRM halts {halted:.3f}")  # fmt: skip
    assert promoted <= SIM_POLICY.alpha
    assert peeked > SIM_POLICY.alpha  # the naive test breaks its own promise...
    assert peeked >= 3 * max(promoted, 0.01)  # ...several times over the always-valid one
    assert halted <= 0.02  # the chi-square repeated at every look, at 0.001, rarely halts a healthy split


def test_a_b_power_at_the_horizon():
    # 0.5 against 0.65 thumbs up, through the 5% -> 25% -> 50% ramp: about 360 challenger ratings by the horizon.
    outcomes = _simulate(0.5, 0.65, experiments=300, seed=7)
    power = sum(a is Action.PROMOTE for a in outcomes.actions) / 300
    print(f"A/B 0.5 vs 0.65, 300 experiments: promoted {power:.3f}")
    assert power >= 0.85
    assert not any(a is Action.ROLLBACK for a in outcomes.actions)


# Judge scores as the primary metric: a judge's 1-5 grade mapped to [0, 1], scored on a sample of each arm's requests.
LEVELS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
JUDGE_RATE = 0.2  # the online sample's share of requests scored
JUDGE_POLICY = dataclasses.replace(SIM_POLICY, primary_metric="judge_score", judge_rubric="helpfulness")


def _simulate_judged(champion: list[float], challenger: list[float], experiments: int, seed: int) -> list[Action]:
    """``_simulate``'s closed loop with judge scores for outcomes: each arm's scores drawn from its grade
    distribution (probabilities of LEVELS)."""
    rng = np.random.default_rng(seed)
    exposures = np.zeros((experiments, 2), dtype=np.int64)
    moments = np.zeros((experiments, 2, 3))  # [experiment, arm, (n, total, squares)]
    step = np.zeros(experiments, dtype=np.int64)
    step_start = np.zeros(experiments, dtype=np.int64)
    step_exposures = np.zeros((experiments, len(JUDGE_POLICY.steps)), dtype=np.int64)
    actions = [Action.WAIT] * experiments
    grades = np.array([champion, challenger])
    shares = np.array(JUDGE_POLICY.steps)
    for look in range(1, LOOKS + 1):
        to_challenger = rng.binomial(EXPOSURES_PER_LOOK, shares[step])
        new = np.stack([EXPOSURES_PER_LOOK - to_challenger, to_challenger], axis=1)
        exposures += new
        judged = rng.binomial(new, JUDGE_RATE)
        counts = np.stack([rng.multinomial(judged[:, arm], grades[arm]) for arm in (0, 1)], axis=1)
        moments += np.stack([counts.sum(-1), counts @ LEVELS, counts @ (LEVELS**2)], axis=-1)
        step_exposures[np.arange(experiments), step] += EXPOSURES_PER_LOOK
        for i in range(experiments):
            if actions[i] not in (Action.WAIT, Action.RAMP):
                continue
            arms = [
                ArmStats(exposures=int(exposures[i, arm]), ratings=0, thumbs_up=0,
                         judge=stats.Moments(int(moments[i, arm, 0]), *moments[i, arm, 1:].tolist()))
                for arm in (0, 1)
            ]  # fmt: skip
            actions[i] = decide(
                champion=arms[0],
                challenger=arms[1],
                planned_share=stats.blended_share(JUDGE_POLICY.steps, step_exposures[i].tolist()),
                step_index=int(step[i]),
                step_age_s=(look - step_start[i]) * LOOK_S,
                age_s=look * LOOK_S,
                policy=JUDGE_POLICY,
            ).action
            if actions[i] is Action.RAMP:
                step[i] += 1
                step_start[i] = look
    return actions


GRADES = [0.1, 0.15, 0.3, 0.3, 0.15]  # mean 0.5625, a judge that grades mostly 3 and 4


def test_judge_score_a_a_false_promotions_stay_below_alpha():
    actions = _simulate_judged(GRADES, GRADES, experiments=1000, seed=20261206)
    promoted = sum(a is Action.PROMOTE for a in actions) / 1000
    rolled_back = sum(a is Action.ROLLBACK for a in actions) / 1000
    print(f"judge-score A/A, 1000 experiments, {LOOKS} looks: false promotions {promoted:.3f}, "
          f"rollbacks {rolled_back:.3f}")  # fmt: skip
    assert promoted <= JUDGE_POLICY.alpha
    assert promoted + rolled_back <= JUDGE_POLICY.alpha  # two-sided: the whole error, both ways


def test_judge_score_a_b_power_at_the_horizon():
    # Mean 0.5625 against 0.6625 (one MDE): grades moved up a notch on a share of answers.
    better = [0.05, 0.1, 0.25, 0.35, 0.25]
    assert float(np.dot(better, LEVELS) - np.dot(GRADES, LEVELS)) == pytest.approx(0.1)
    actions = _simulate_judged(GRADES, better, experiments=300, seed=11)
    power = sum(a is Action.PROMOTE for a in actions) / 300
    print(f"judge-score A/B +0.1, 300 experiments: promoted {power:.3f}")
    assert power >= 0.85
    assert not any(a is Action.ROLLBACK for a in actions)
