"""How far a scorer agrees with people: Cohen's kappa between its pass/fail and the thumbs of the same requests,
with the confusion matrix and the sample size, and a sentence saying how far to trust the scorer.

Kappa corrects raw agreement for the agreement chance alone would give (two raters who both say "up" 90% of the
time agree 82% of the time by chance). Its standard error is the large-sample one (Fleiss, Cohen & Everitt 1969,
simplified form), so the interval is approximate for small n; below ``MIN_N`` the readout says not to trust it.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

MIN_N = 30
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class Agreement:
    n: int
    # confusion[human][scorer], "up"/"down": how the scorer's pass/fail met the people's thumbs
    confusion: dict[str, dict[str, int]]
    observed: float | None  # share of requests where both agree
    expected: float | None  # share chance alone would give
    kappa: float | None
    interval: tuple[float, float] | None  # approximate 95%
    trust: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> Agreement:
    """``pairs``: (human thumbs up, scorer pass) per request."""
    n = len(pairs)
    table = {h: {s: 0 for s in ("up", "down")} for h in ("up", "down")}
    for human, scorer in pairs:
        table["up" if human else "down"]["up" if scorer else "down"] += 1
    if n == 0:
        return Agreement(0, table, None, None, None, None, "No request has both a score and a human rating yet.")
    observed = (table["up"]["up"] + table["down"]["down"]) / n
    human_up = (table["up"]["up"] + table["up"]["down"]) / n
    scorer_up = (table["up"]["up"] + table["down"]["up"]) / n
    expected = human_up * scorer_up + (1 - human_up) * (1 - scorer_up)
    if expected >= 1:  # both sides gave one answer only: agreement beyond chance is undefined
        return Agreement(n, table, observed, expected, None, None,
                         "Kappa is undefined: the people or the scorer gave only one answer; rate more varied requests.")  # fmt: skip
    kappa = (observed - expected) / (1 - expected)
    se = math.sqrt(max(observed * (1 - observed), 0.0) / n) / (1 - expected)
    interval = (max(-1.0, kappa - _Z95 * se), min(1.0, kappa + _Z95 * se))
    return Agreement(n, table, observed, expected, kappa, interval, _trust(kappa, interval, n))


def _band(kappa: float) -> str:
    # Landis & Koch (1977): the conventional reading of kappa.
    for limit, name in (
        (0.8, "almost perfect"),
        (0.6, "substantial"),
        (0.4, "moderate"),
        (0.2, "fair"),
        (0.0, "slight"),
    ):
        if kappa > limit:
            return name
    return "no better than chance"


def _trust(kappa: float, interval: tuple[float, float], n: int) -> str:
    said = f"kappa {kappa:.2f} ({_band(kappa)} agreement), 95% interval [{interval[0]:.2f}, {interval[1]:.2f}], n = {n}"
    if n < MIN_N:
        return f"Too few rated requests to trust this scorer ({said}); it needs at least {MIN_N}."
    if interval[0] > 0.6:
        return f"Trust this scorer as a stand-in for people: {said}."
    if interval[0] > 0.2:
        return f"Use this scorer as a guardrail, not as the primary metric: {said}."
    return f"Do not rely on this scorer: {said}; its scores do not track people's thumbs."
