"""Always-valid statistics for a champion/challenger experiment on its primary metric (pure functions, no I/O): the
thumbs-up rate, or the mean judge score of a rubric (a bounded mean in [0, 1]).

Why always-valid: the controller looks at the numbers every ~30 s and acts on the first significant look. A
fixed-horizon test read that way promotes far more often than its alpha (``bench/experiment_stats_bench.py``
measures it); a confidence sequence stays valid at every look, whenever the controller stops.

The method: a normal-mixture sequential probability ratio test (mSPRT) on the difference of two means (a proportion
is the mean of 0/1 outcomes),
read as a two-sided confidence sequence (Robbins 1970; Johari, Pekelis & Walsh 2017 "Always valid inference",
the method of Optimizely's stats engine; Howard, Ramdas, McAuliffe & Sekhon 2021 "Time-uniform, nonparametric,
nonasymptotic confidence sequences", the normal-mixture boundary; Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas
2023 "Time-uniform central limit theory and asymptotic confidence sequences", for the plug-in variance).

With ``n_A`` outcomes ``y_i`` in [0, 1] for the champion (ratings as 0/1, or judge scores), ``S_A = sum y``,
``Q_A = sum y^2``, and the same for the challenger::

    theta_hat = S_B/n_B - S_A/n_A                                   # challenger - champion
    V         = s2_A/n_A + s2_B/n_B                                 # plug-in variance of theta_hat
    s2        = (Q+1)/(n+2) - ((S+1)/(n+2))^2                       # with a pseudo-outcome at 0 and one at 1
    Lambda    = sqrt(V/(V+tau^2)) * exp(tau^2 (theta_hat-theta_0)^2 / (2 V (V+tau^2)))   # mixture over N(0, tau^2)
    p_value   = min(1, 1/Lambda at theta_0 = 0)                     # P(ever Lambda >= 1/alpha | H0) <= alpha
    CS        = theta_hat +- sqrt(V (V+tau^2)/tau^2 * (2 log(1/alpha) + log((V+tau^2)/V)))

The pseudo-outcomes keep ``V > 0`` while every score is equal (a small arm of identical judge scores) and shrink
toward the widest variance a [0, 1] outcome can have (1/4); for 0/1 outcomes ``Q = S`` and ``s2 = p(1-p)`` with
``p = (x+1)/(n+2)``, the smoothed binomial variance. The Gaussian mixture needs only a finite variance, and a bounded
outcome has one (at most 1/4), so the same boundary holds for judge scores by the same central limit argument.

The CS is the set of ``theta_0`` with ``Lambda < 1/alpha``; it excludes 0 exactly when ``p_value <= alpha``.
Unequal and changing arm sizes (a 5% canary ramped to 50%) are covered: with either arm growing in any order,
``Cov(theta_hat_s, theta_hat_t) = V_t`` for ``s < t``, so ``theta_hat / V`` is (asymptotically) a Brownian motion
with drift ``theta`` in the information time ``I = 1/V``, whatever the allocation path. The Gaussian approximation
and the plug-in ``V`` make the guarantee asymptotic; the policy's minimum ratings per arm keeps the tiny-sample
looks out, and the A/A simulations measure the real rate. Not covered: a base rate that drifts while the share
changes (Simpson's paradox on pooled counts); a stratified estimate per step would be needed for that.

The mixture variance ``tau``: the boundary is tightest at the information ``I* = c(alpha)/tau^2`` with
``c(alpha) = 2 log(1/alpha) + log(1 + 2 log(1/alpha))`` (Howard et al. 2021, Waudby-Smith et al. 2023). The policy
sets ``tau`` to its minimum detectable effect (MDE): at alpha = 0.05, ``c = 7.94``, close to
``(z_0.975 + z_0.8)^2 = 7.85``, so the sequence is sharpest where a fixed-horizon test would just reach 80% power
for the MDE, and still valid (only wider) far from it.

Outcomes still needed (approximate): the smallest information ``I`` with ``halfwidth(I) + z_power/sqrt(I) <= MDE``,
i.e. a true effect of one MDE is outside the boundary with probability ``power`` at that look (ignoring earlier
chances to cross, so it over-counts a little), converted to outcomes per arm at the current share with the arms'
variances: for thumbs up ``p_A`` = the champion's rate and ``p_B = p_A + MDE``; for judge scores the champion's
score variance for both arms.

Sample-ratio mismatch: a chi-square goodness-of-fit test of the arms' exposures against the planned split (1 degree
of freedom, ``p = erfc(sqrt(chi2/2))``), meant for a strict threshold such as 0.001 because the controller repeats it.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

METHOD = "mSPRT normal-mixture confidence sequence for a difference of proportions (Johari et al. 2017)"
MEAN_METHOD = "mSPRT normal-mixture confidence sequence for a difference of bounded means (Johari et al. 2017)"
_NORMAL = NormalDist()


@lru_cache(maxsize=64)  # a few quantiles (1 - alpha/2, the power), asked several times in every decision
def _z(quantile: float) -> float:
    return _NORMAL.inv_cdf(quantile)


def wilson_interval(successes: int, trials: int, *, alpha: float = 0.05) -> tuple[float, float] | None:
    """The Wilson score interval at level ``1 - alpha`` (fixed-horizon: for display of one arm, not for deciding)."""
    if trials == 0:
        return None
    z = _z(1 - alpha / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (0.0 if successes == 0 else max(0.0, centre - half)), (
        1.0 if successes == trials else min(1.0, centre + half)
    )


@dataclass(frozen=True)
class Moments:
    """An arm's outcomes in [0, 1], summed: ``n`` outcomes, their ``total`` and the total of their squares."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    @classmethod
    def of_counts(cls, successes: int, trials: int) -> "Moments":
        """0/1 outcomes (thumbs up): a square is the outcome itself."""
        return cls(trials, float(successes), float(successes))

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def smoothed_variance(self) -> float:
        """The outcomes' variance with a pseudo-outcome at 0 and one at 1 added (1/4 before any data; never 0)."""
        m = (self.total + 1) / (self.n + 2)
        return max((self.squares + 1) / (self.n + 2) - m * m, 1e-12)


def mean_interval(moments: Moments, *, alpha: float = 0.05) -> tuple[float, float] | None:
    """A normal interval of an arm's mean score at level ``1 - alpha``, clipped to [0, 1] (for display, like Wilson's
    for a rate: fixed-horizon, not for deciding)."""
    if moments.n == 0:
        return None
    half = _z(1 - alpha / 2) * math.sqrt(moments.smoothed_variance / moments.n)
    return max(0.0, moments.mean - half), min(1.0, moments.mean + half)


def smoothed_rate(successes: int, trials: int) -> float:
    """``(x+1)/(n+2)``: a rate for variances that is never exactly 0 or 1 (0.5 before any data)."""
    return (successes + 1) / (trials + 2)


def mixture_half_width(variance: float, *, alpha: float, tau: float) -> float:
    """Half-width of the confidence sequence at variance ``V`` (the boundary where ``Lambda = 1/alpha``)."""
    t2 = tau * tau
    return math.sqrt(variance * (variance + t2) / t2 * (2 * math.log(1 / alpha) + math.log((variance + t2) / variance)))


def mixture_log_likelihood_ratio(estimate: float, variance: float, *, tau: float) -> float:
    """``log Lambda`` of the normal mixture for ``H0: theta = 0`` (in logs: the exponent overflows for large samples)."""
    t2 = tau * tau
    return 0.5 * math.log(variance / (variance + t2)) + t2 * estimate * estimate / (2 * variance * (variance + t2))


@dataclass(frozen=True)
class SequentialDifference:
    """Challenger minus champion mean (thumbs-up rate or judge score) with its always-valid confidence sequence and
    p-value."""

    difference: float
    lower: float
    upper: float
    p_value: float  # always valid at this look: min(1, 1/Lambda); a caller may keep the running minimum
    variance: float
    information: float  # 1/V, the clock the boundary runs on
    tau: float
    alpha: float


def sequential_difference(
    champion_up: int, champion_n: int, challenger_up: int, challenger_n: int, *, alpha: float, tau: float
) -> SequentialDifference | None:
    """The mSPRT readout of the difference of thumbs-up rates; ``None`` while an arm has no ratings."""
    return sequential_mean_difference(
        Moments.of_counts(champion_up, champion_n), Moments.of_counts(challenger_up, challenger_n), alpha=alpha, tau=tau
    )


def sequential_mean_difference(
    champion: Moments, challenger: Moments, *, alpha: float, tau: float
) -> SequentialDifference | None:
    """The mSPRT readout of the difference of two arms' means of outcomes in [0, 1]; ``None`` while an arm has none."""
    if champion.n == 0 or challenger.n == 0:
        return None
    estimate = challenger.mean - champion.mean
    variance = champion.smoothed_variance / champion.n + challenger.smoothed_variance / challenger.n
    half = mixture_half_width(variance, alpha=alpha, tau=tau)
    log_lr = mixture_log_likelihood_ratio(estimate, variance, tau=tau)
    return SequentialDifference(
        difference=estimate,
        lower=max(-1.0, estimate - half),
        upper=min(1.0, estimate + half),
        p_value=1.0 if log_lr <= 0 else math.exp(-log_lr),
        variance=variance,
        information=1 / variance,
        tau=tau,
        alpha=alpha,
    )


@lru_cache(maxsize=64)
def information_needed(effect: float, *, alpha: float, tau: float, power: float = 0.8) -> float:
    """The smallest information ``I = 1/V`` at which a true ``effect`` lies outside the boundary with ``power``."""
    z_power = _z(power)

    def short_of(information: float) -> bool:
        return mixture_half_width(1 / information, alpha=alpha, tau=tau) + z_power / math.sqrt(information) > effect

    low, high = 1.0, 2.0
    while short_of(high):  # the boundary shrinks like sqrt(log I / I): doubling finds a bracket
        low, high = high, high * 2
    for _ in range(60):  # bisection in log scale, to a relative precision far below one rating
        middle = math.sqrt(low * high)
        low, high = (middle, high) if short_of(middle) else (low, middle)
    return high


def ratings_needed(
    *,
    champion_up: int,
    champion_n: int,
    challenger_n: int,
    challenger_share: float,
    effect: float,
    alpha: float,
    tau: float,
    power: float = 0.8,
) -> tuple[int, int]:
    """More ratings (champion, challenger) for the information to detect ``effect``, if new ratings split by
    ``challenger_share``, the challenger's rate assumed one ``effect`` above the champion's."""
    p_a = smoothed_rate(champion_up, champion_n)
    p_b = min(p_a + effect, 1 - 1e-6)
    return outcomes_needed(
        champion_variance=p_a * (1 - p_a), challenger_variance=p_b * (1 - p_b), champion_n=champion_n,
        challenger_n=challenger_n, challenger_share=challenger_share, effect=effect, alpha=alpha, tau=tau, power=power,
    )  # fmt: skip


def outcomes_needed(
    *,
    champion_variance: float,
    challenger_variance: float,
    champion_n: int,
    challenger_n: int,
    challenger_share: float,
    effect: float,
    alpha: float,
    tau: float,
    power: float = 0.8,
) -> tuple[int, int]:
    """More outcomes (champion, challenger) for the information to detect ``effect``, if new ones split by
    ``challenger_share``. Solves ``a/(n_A + (1-s) m) + b/(n_B + s m) = 1/I`` for the total ``m`` (a quadratic)."""
    if not 0 < challenger_share < 1:
        raise ValueError("challenger_share must be strictly between 0 and 1")
    target = 1 / information_needed(effect, alpha=alpha, tau=tau, power=power)
    a, b, s = champion_variance, challenger_variance, challenger_share
    if champion_n and challenger_n and a / champion_n + b / challenger_n <= target:
        return 0, 0
    # Multiplying out: A m^2 + B m + C = 0, A > 0 and C <= 0, so the larger root is the only non-negative one.
    qa = target * s * (1 - s)
    qb = target * (champion_n * s + challenger_n * (1 - s)) - a * s - b * (1 - s)
    qc = target * champion_n * challenger_n - a * challenger_n - b * champion_n
    total = (-qb + math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
    return math.ceil((1 - s) * total), math.ceil(s * total)


def srm_p_value(champion_exposures: int, challenger_exposures: int, challenger_share: float) -> float | None:
    """Chi-square goodness-of-fit p-value of the exposures against the planned split (``None`` without exposures)."""
    if not 0 < challenger_share < 1:
        raise ValueError("challenger_share must be strictly between 0 and 1")
    total = champion_exposures + challenger_exposures
    if total == 0:
        return None
    expected_b = total * challenger_share
    expected_a = total - expected_b
    chi2 = (champion_exposures - expected_a) ** 2 / expected_a + (challenger_exposures - expected_b) ** 2 / expected_b
    return math.erfc(math.sqrt(chi2 / 2))  # survival function of chi-square with 1 degree of freedom


def blended_share(step_shares: Sequence[float], step_exposures: Sequence[int]) -> float:
    """The challenger's expected share of exposures counted over several steps: the steps' shares weighted by the
    exposures (both arms) each step saw. Pass it to the SRM check when the counts span a ramp."""
    if len(step_shares) != len(step_exposures) or not step_shares:
        raise ValueError("one exposure count per step share is needed")
    total = sum(step_exposures)
    if total == 0:
        return step_shares[-1]
    return sum(s * n for s, n in zip(step_shares, step_exposures, strict=True)) / total


def fixed_horizon_z(champion_up: int, champion_n: int, challenger_up: int, challenger_n: int) -> float | None:
    """The pooled two-proportion z statistic of a fixed-horizon test. Only valid when read once at a planned size:
    kept to show (in tests and the benchmark) how often peeking at it every look promotes a tie."""
    if champion_n == 0 or challenger_n == 0:
        return None
    pooled = (champion_up + challenger_up) / (champion_n + challenger_n)
    variance = pooled * (1 - pooled) * (1 / champion_n + 1 / challenger_n)
    if variance == 0:
        return 0.0
    return (challenger_up / challenger_n - champion_up / champion_n) / math.sqrt(variance)
