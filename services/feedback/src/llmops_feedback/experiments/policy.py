"""The decision rule of an experiment (champion against challenger), pure: counts and a policy in, a decision out.

Checks, in order, the first that fires decides:
1. sample-ratio mismatch (units against the planned split)      -> HALT: the assignment is broken, trust nothing;
2. a guardrail broken (error rate, p95 TTFT, judge score)       -> ROLLBACK, whatever the thumbs say;
3. challenger significantly worse (confidence sequence < 0)     -> ROLLBACK;
4. challenger significantly better (confidence sequence > 0)    -> PROMOTE, at any step;
   (3 and 4 on the primary metric: the thumbs-up rate, or the mean judge score of ``judge_rubric``)
5. maximum duration reached without a result                    -> KEEP_CHAMPION;
6. guardrails checked and holding, step old enough, not last     -> RAMP;
7. otherwise                                                     -> WAIT.
Steps 3 and 4 need ``min_ratings_per_arm`` outcomes of the primary metric (ratings, or judge scores) on both arms. The statistics are in ``stats`` (always-valid, so the
controller may call this every few seconds).
"""

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from itertools import pairwise
from typing import Any

from llmops_feedback.evaluation import rubrics
from llmops_feedback.experiments.stats import (
    MEAN_METHOD,
    METHOD,
    Moments,
    SequentialDifference,
    mean_interval,
    outcomes_needed,
    ratings_needed,
    sequential_mean_difference,
    srm_p_value,
    wilson_interval,
)

PRIMARY_METRICS = ("thumbs_up", "judge_score")


@dataclass(frozen=True)
class ArmStats:
    """One arm's counts since the experiment started. ``errors``: responses with status >= 500."""

    exposures: int
    ratings: int
    thumbs_up: int
    errors: int = 0
    ttft_p95_ms: float | None = None
    judge: Moments | None = None  # the judge scores (in [0, 1]) of the arm's requests, by the policy's rubric

    @property
    def judge_score(self) -> float | None:
        return self.judge.mean if self.judge else None

    def __post_init__(self) -> None:
        if min(self.exposures, self.ratings, self.thumbs_up, self.errors) < 0:
            raise ValueError("arm counts cannot be negative")
        if self.thumbs_up > self.ratings:
            raise ValueError("thumbs_up cannot exceed ratings")
        if self.errors > self.exposures:
            raise ValueError("errors cannot exceed exposures")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ExperimentPolicy:
    """What an experiment must show, and the guardrails it must keep. Stored as JSON via ``to_dict``/``from_dict``."""

    alpha: float = 0.05
    min_ratings_per_arm: int = 50
    min_detectable_effect: float = 0.1  # absolute thumbs-up rate; also the mixture's tau (see stats)
    max_duration_s: float = 7 * 86400
    steps: tuple[float, ...] = (0.05, 0.25, 0.5)  # the challenger's share of traffic, step by step
    min_step_duration_s: float = 0
    max_error_rate_increase: float = 0.02  # absolute, challenger over champion
    max_ttft_p95_ratio: float = 1.5  # challenger / champion
    # What the experiment decides on: the thumbs-up rate, or the mean score of judge_rubric (the evaluation
    # workers' online sample of each arm, or scores posted to /v1/evaluations/scores), both in [0, 1].
    primary_metric: str = "thumbs_up"
    min_judge_score: float | None = None
    # The rubric whose scores the judge metric (primary) and guardrail (min_judge_score) read: named, never implied.
    judge_rubric: str | None = None
    srm_alpha: float = 0.001
    min_exposures_for_srm: int = 100
    # TTFT and judge are compared only past this many challenger exposures (a cold adapter's first answers are
    # slow), and a step only ramps once they could be compared: "guardrails hold" means checked, not unknown.
    min_exposures_for_guardrails: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps) if isinstance(self.steps, list | tuple) else self.steps)
        problems = [message for ok, message in self._rules() if not ok]
        if problems:
            raise ValueError("invalid experiment policy: " + "; ".join(problems))

    def _rules(self) -> list[tuple[bool, str]]:
        def within(name: str, low: float, high: float) -> tuple[bool, str]:
            value = getattr(self, name)
            return _number(value) and low < value < high, f"{name} must be a number strictly between {low} and {high}"

        def count(name: str, low: int) -> tuple[bool, str]:
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
            return ok, f"{name} must be an integer >= {low}"

        steps = self.steps
        steps_ok = isinstance(steps, tuple) and len(steps) > 0 and all(_number(s) and 0 < s < 1 for s in steps)
        return [
            within("alpha", 0, 1),
            within("srm_alpha", 0, 1),
            within("min_detectable_effect", 0, 1),
            count("min_ratings_per_arm", 1),
            count("min_exposures_for_srm", 0),
            count("min_exposures_for_guardrails", 0),
            (_number(self.max_duration_s) and self.max_duration_s > 0, "max_duration_s must be a positive number"),
            (_number(self.min_step_duration_s) and self.min_step_duration_s >= 0, "min_step_duration_s must be >= 0"),
            (
                _number(self.max_error_rate_increase) and 0 <= self.max_error_rate_increase <= 1,
                "max_error_rate_increase must be between 0 and 1 (an absolute rate)",
            ),
            (_number(self.max_ttft_p95_ratio) and self.max_ttft_p95_ratio >= 1, "max_ttft_p95_ratio must be >= 1"),
            (
                self.min_judge_score is None or (_number(self.min_judge_score) and 0 <= self.min_judge_score <= 1),
                "min_judge_score must be null or between 0 and 1",
            ),
            (
                self.judge_rubric is None
                or (isinstance(self.judge_rubric, str) and rubrics.get(self.judge_rubric) is not None),
                f"judge_rubric must be null or one of {', '.join(sorted(rubrics.RUBRICS))}",
            ),
            (self.primary_metric in PRIMARY_METRICS, f"primary_metric must be one of {', '.join(PRIMARY_METRICS)}"),
            (
                self.judge_rubric is not None or self.primary_metric != "judge_score",
                "judge_rubric must name the rubric when primary_metric is judge_score",
            ),
            (
                self.judge_rubric is not None or self.min_judge_score is None,
                "judge_rubric must name the rubric when min_judge_score is set",
            ),
            (steps_ok, "steps must be a non-empty list of shares strictly between 0 and 1"),
            (steps_ok and all(a < b for a, b in pairwise(steps)), "steps must increase strictly"),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "steps": list(self.steps)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExperimentPolicy":
        """Missing keys take the defaults; unknown keys are refused, so a typo is not silently ignored."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"invalid experiment policy: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


class Action(str, Enum):
    WAIT = "wait"
    RAMP = "ramp"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    KEEP_CHAMPION = "keep_champion"
    HALT = "halt"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str  # one human sentence
    evidence: dict[str, Any] = field(default_factory=dict)  # every number looked at; JSON-serialisable

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "reason": self.reason, "evidence": self.evidence}


@dataclass(frozen=True)
class ArmReadout:
    n: int  # outcomes of the primary metric: ratings, or judge scores
    mean: float | None  # the thumbs-up rate, or the mean judge score
    interval: tuple[float, float] | None  # 1 - alpha, fixed-horizon, for display: Wilson's, or a normal one


@dataclass(frozen=True)
class Readout:
    """What a dashboard shows: each arm's primary metric, and the always-valid difference with the outcomes (ratings
    or judge scores) still needed."""

    metric: str  # thumbs_up | judge_score
    champion: ArmReadout
    challenger: ArmReadout
    difference: SequentialDifference | None  # challenger - champion; None until both arms have outcomes
    needed: tuple[int, int]  # more outcomes (champion, challenger) to detect the MDE at 80% power
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


_LEAVES = frozenset({int, float, str, bool, type(None)})


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` for the readout's frozen dataclasses (of numbers, strings, None, tuples of those and
    such dataclasses), without asdict's deep copy of every leaf and a call per leaf: ``decide`` puts a readout in
    each decision's evidence, and asdict took half of its time (5x slower than this)."""
    if hasattr(type(value), "__dataclass_fields__"):
        return {
            name: item if type(item := getattr(value, name)) in _LEAVES else _plain(item)
            for name in type(value).__dataclass_fields__
        }
    if type(value) is tuple:
        return tuple(item if type(item) in _LEAVES else _plain(item) for item in value)
    return value


def primary(stats: ArmStats, policy: ExperimentPolicy) -> Moments:
    """The arm's outcomes of the policy's primary metric."""
    if policy.primary_metric == "judge_score":
        return stats.judge or Moments()
    return Moments.of_counts(stats.thumbs_up, stats.ratings)


def _arm(outcomes: Moments, policy: ExperimentPolicy) -> ArmReadout:
    if policy.primary_metric == "judge_score":
        return ArmReadout(outcomes.n, outcomes.mean, mean_interval(outcomes, alpha=policy.alpha))
    up = round(outcomes.total)
    return ArmReadout(outcomes.n, outcomes.mean, wilson_interval(up, outcomes.n, alpha=policy.alpha))


def readout(*, champion: ArmStats, challenger: ArmStats, challenger_share: float, policy: ExperimentPolicy) -> Readout:
    """``challenger_share``: the share new outcomes will arrive at (the current step's), for the outcomes needed."""
    a, b, mde = primary(champion, policy), primary(challenger, policy), policy.min_detectable_effect
    common = {"champion_n": a.n, "challenger_n": b.n, "challenger_share": challenger_share, "effect": mde,
              "alpha": policy.alpha, "tau": mde}  # fmt: skip
    if policy.primary_metric == "judge_score":
        # The challenger's spread is assumed the champion's: a mean shift of one MDE, not a new distribution.
        variance = a.smoothed_variance
        needed = outcomes_needed(champion_variance=variance, challenger_variance=variance, **common)
        method = MEAN_METHOD
    else:
        needed, method = ratings_needed(champion_up=round(a.total), **common), METHOD
    floor = policy.min_ratings_per_arm  # the policy decides nothing below this, whatever the information says
    needed = (max(needed[0], floor - a.n), max(needed[1], floor - b.n))
    difference = sequential_mean_difference(a, b, alpha=policy.alpha, tau=mde)
    return Readout(policy.primary_metric, _arm(a, policy), _arm(b, policy), difference, needed, method)


def _guardrails(champion: ArmStats, challenger: ArmStats, policy: ExperimentPolicy) -> tuple[list[str], dict]:
    """The broken guardrails (sentences) and the numbers behind them."""
    broken: list[str] = []
    champion_errors = champion.errors / champion.exposures if champion.exposures else 0.0
    challenger_errors = challenger.errors / challenger.exposures if challenger.exposures else None
    # The challenger's error rate counts as higher only by its interval's lower bound: a single 5xx among a
    # canary's first ten answers must not roll back, while an outage (every answer failing) does within a few.
    low = (wilson_interval(challenger.errors, challenger.exposures, alpha=policy.alpha) or (0.0, 1.0))[0]
    if low - champion_errors > policy.max_error_rate_increase:
        broken.append(
            f"the challenger's error rate is at least {low:.1%} against the champion's {champion_errors:.1%} "
            f"(allowed increase {policy.max_error_rate_increase:.1%})"
        )
    checked = challenger.exposures >= policy.min_exposures_for_guardrails
    ttft_ratio = None
    if challenger.ttft_p95_ms is not None and champion.ttft_p95_ms:
        ttft_ratio = challenger.ttft_p95_ms / champion.ttft_p95_ms
        if checked and ttft_ratio > policy.max_ttft_p95_ratio:
            broken.append(
                f"the challenger's p95 TTFT is {ttft_ratio:.2f}x the champion's (max {policy.max_ttft_p95_ratio}x)"
            )
    judge = challenger.judge_score
    if checked and policy.min_judge_score is not None and judge is not None and judge < policy.min_judge_score:
        broken.append(f"the challenger's judge score {judge:.3f} is below {policy.min_judge_score}")
    evidence = {
        "checked": checked, "min_exposures_for_guardrails": policy.min_exposures_for_guardrails,
        "champion_error_rate": champion_errors, "challenger_error_rate": challenger_errors,
        "challenger_error_rate_low": low, "max_error_rate_increase": policy.max_error_rate_increase,
        "champion_ttft_p95_ms": champion.ttft_p95_ms, "challenger_ttft_p95_ms": challenger.ttft_p95_ms,
        "ttft_p95_ratio": ttft_ratio, "max_ttft_p95_ratio": policy.max_ttft_p95_ratio,
        "champion_judge_score": champion.judge_score, "challenger_judge_score": judge,
        "min_judge_score": policy.min_judge_score, "broken": broken,
    }  # fmt: skip
    return broken, evidence


def decide(
    *,
    champion: ArmStats,
    challenger: ArmStats,
    planned_share: float,
    step_index: int,
    step_age_s: float,
    age_s: float,
    policy: ExperimentPolicy,
    units: tuple[int, int] | None = None,
) -> Decision:
    """One look of the controller. ``units``: the (champion, challenger) assignment units the sample-ratio check
    counts (users per step with sticky routing, see ``readout.assignments``); the arms' exposures when None.
    ``planned_share``: the challenger's expected share of those units (``stats.blended_share`` when they span
    several steps); ``step_index``: the current step of
    ``policy.steps``; ``step_age_s`` / ``age_s``: how long the step / the experiment has run."""
    if not 0 <= step_index < len(policy.steps):
        raise ValueError(f"step_index {step_index} is outside the policy's {len(policy.steps)} steps")
    shown = readout(champion=champion, challenger=challenger, challenger_share=policy.steps[step_index], policy=policy)
    champion_units, challenger_units = units if units is not None else (champion.exposures, challenger.exposures)
    assigned = champion_units + challenger_units
    srm = srm_p_value(champion_units, challenger_units, planned_share)
    srm_checked = assigned >= policy.min_exposures_for_srm and srm is not None
    broken, guardrails = _guardrails(champion, challenger, policy)
    d = shown.difference
    enough = min(shown.champion.n, shown.challenger.n) >= policy.min_ratings_per_arm
    last = step_index == len(policy.steps) - 1
    evidence = {
        "method": shown.method,
        "primary_metric": policy.primary_metric,
        "judge_rubric": policy.judge_rubric,
        "readout": shown.to_dict(),
        "enough_ratings": enough,
        "min_ratings_per_arm": policy.min_ratings_per_arm,
        "srm": {"p_value": srm, "checked": srm_checked, "alpha": policy.srm_alpha, "planned_share": planned_share,
                "unit": "exposures" if units is None else "users",
                "champion_units": champion_units, "challenger_units": challenger_units},
        "guardrails": guardrails,
        "step_index": step_index, "step_share": policy.steps[step_index], "last_step": last,
        "step_age_s": step_age_s, "min_step_duration_s": policy.min_step_duration_s,
        "age_s": age_s, "max_duration_s": policy.max_duration_s,
    }  # fmt: skip

    def decision(action: Action, reason: str) -> Decision:
        return Decision(action, reason, evidence)

    if srm_checked and srm < policy.srm_alpha:
        share = challenger_units / assigned
        unit = "exposures" if units is None else "users"
        return decision(
            Action.HALT,
            f"Sample-ratio mismatch: the challenger got {share:.1%} of {assigned} {unit} against "
            f"{planned_share:.1%} planned (p = {srm:.2g} < {policy.srm_alpha}); the split is broken, so no result holds.",
        )
    if broken:
        return decision(Action.ROLLBACK, "Guardrail broken: " + "; ".join(broken) + ".")
    interval = f"[{d.lower:+.3f}, {d.upper:+.3f}]" if d else ""
    judged = policy.primary_metric == "judge_score"
    metric = f"{policy.judge_rubric} judge-score" if judged else "thumbs-up"
    if enough and d.upper < 0:
        return decision(
            Action.ROLLBACK,
            f"The challenger is worse: {metric} difference {d.difference:+.3f}, always-valid interval {interval} "
            f"entirely below 0 (p = {d.p_value:.2g}).",
        )
    if enough and d.lower > 0:
        return decision(
            Action.PROMOTE,
            f"The challenger is better: {metric} difference {d.difference:+.3f}, always-valid interval {interval} "
            f"entirely above 0 (p = {d.p_value:.2g}).",
        )
    if age_s >= policy.max_duration_s:
        return decision(
            Action.KEEP_CHAMPION,
            f"No significant difference after the maximum duration ({policy.max_duration_s:.0f} s); the champion stays.",
        )
    if not last and guardrails["checked"] and step_age_s >= policy.min_step_duration_s:
        return decision(
            Action.RAMP,
            f"Guardrails hold after {challenger.exposures} challenger exposures and the step has run "
            f"{step_age_s:.0f} s: ramp from {policy.steps[step_index]:.0%} to {policy.steps[step_index + 1]:.0%}.",
        )
    outcomes = f"{policy.judge_rubric} judge scores" if judged else "ratings"
    more = f"{shown.needed[0]} more champion and {shown.needed[1]} more challenger {outcomes}"
    wait = f"No decision yet: about {more} to detect a {policy.min_detectable_effect} effect"
    if not last and not guardrails["checked"]:
        wait += f"; the ramp waits for {policy.min_exposures_for_guardrails} challenger exposures to check guardrails"
    elif not last:
        wait += f"; the ramp waits until the step has run {policy.min_step_duration_s:.0f} s"
    return decision(Action.WAIT, wait + ".")
