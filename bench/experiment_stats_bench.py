"""Experiment statistics benchmark: false promotions, power and ratings to decision of the always-valid test
(``llmops_feedback.experiments``) against a fixed-horizon z test peeked at the same looks.

    .venv/bin/python bench/experiment_stats_bench.py [--experiments 5000] [--looks 150] [--seed 1]

Each simulated experiment receives ratings in batches of 20 (one batch per controller look), each going to the
challenger with the canary share (0.05, 0.25, 0.5, or a ramp 0.05 -> 0.25 -> 0.5 every 20 looks), thumbs up with
probability 0.5 (champion) and 0.5 + effect (challenger). At every look both tests may stop the experiment once each
arm has the policy's minimum ratings (50): the always-valid one when its confidence sequence excludes 0 (mixture
tau = the policy's MDE, 0.1), the peeked z test when |z| > z_(1-alpha/2). A promotion under effect 0 is false.
The looks are vectorised with numpy; the same formulas as ``stats`` (checked on sampled points), and the first 200
experiments of one configuration are replayed through ``policy.decide`` to check that it takes the same decisions.
Results: bench/results/experiment_stats.json and .png.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from llmops_feedback.experiments import stats
from llmops_feedback.experiments.policy import Action, ArmStats, ExperimentPolicy, decide

RESULTS = Path(__file__).parent / "results"
BATCH = 20  # ratings per look
BASE_RATE = 0.5
EFFECTS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15)
SHARES = {"0.05": 0.05, "0.25": 0.25, "0.5": 0.5, "ramp": None}
ALPHAS = (0.01, 0.05, 0.1)
POLICY = ExperimentPolicy()
TAU = POLICY.min_detectable_effect


def share_by_look(name: str, looks: int) -> np.ndarray:
    if SHARES[name] is not None:
        return np.full(looks, SHARES[name])
    return np.array([POLICY.steps[min(look // 20, len(POLICY.steps) - 1)] for look in range(looks)])


def simulate(rng: np.random.Generator, experiments: int, shares: np.ndarray, effect: float) -> tuple[np.ndarray, ...]:
    """Cumulative (champion up, champion ratings, challenger up, challenger ratings), each [experiment, look]."""
    to_challenger = rng.binomial(BATCH, shares[None, :], size=(experiments, len(shares)))
    up_challenger = rng.binomial(to_challenger, BASE_RATE + effect)
    up_champion = rng.binomial(BATCH - to_challenger, BASE_RATE)
    cumulative = [np.cumsum(a, axis=1) for a in (up_champion, BATCH - to_challenger, up_challenger, to_challenger)]
    return tuple(cumulative)


def sequence_bounds(ua, na, ub, nb, *, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``stats.sequential_difference``'s lower and upper bounds, vectorised (infinite while an arm has no rating)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pa, pb = (ua + 1) / (na + 2), (ub + 1) / (nb + 2)
        variance = pa * (1 - pa) / na + pb * (1 - pb) / nb
        estimate = ub / nb - ua / na
        t2 = TAU * TAU
        half = np.sqrt(variance * (variance + t2) / t2 * (2 * np.log(1 / alpha) + np.log((variance + t2) / variance)))
    lower, upper = np.maximum(-1.0, estimate - half), np.minimum(1.0, estimate + half)
    empty = (na == 0) | (nb == 0)
    return np.where(empty, -np.inf, lower), np.where(empty, np.inf, upper)


def z_statistic(ua, na, ub, nb) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (ua + ub) / (na + nb)
        z = (ub / nb - ua / na) / np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def first_stop(stop: np.ndarray) -> np.ndarray:
    """Index of the first look that stops each experiment, -1 where none does."""
    return np.where(stop.any(axis=1), stop.argmax(axis=1), -1)


def outcomes(stop: np.ndarray, better: np.ndarray, total: np.ndarray) -> dict:
    at = first_stop(stop)
    rows = np.arange(len(at))
    stopped = at >= 0
    promoted = stopped & better[rows, at]
    ratings = total[rows, at][promoted]
    return {
        "promoted": float(promoted.mean()),
        "rolled_back": float((stopped & ~promoted).mean()),
        "median_ratings_to_promotion": float(np.median(ratings)) if len(ratings) else None,
    }


def check_against_stats(rng, arrays, alpha: float, points: int = 2000) -> float:
    ua, na, ub, nb = arrays
    lower, upper = sequence_bounds(ua, na, ub, nb, alpha=alpha)
    worst = 0.0
    for i, j in zip(rng.integers(0, ua.shape[0], points), rng.integers(0, ua.shape[1], points), strict=True):
        d = stats.sequential_difference(*(int(a[i, j]) for a in arrays), alpha=alpha, tau=TAU)
        if d is not None:
            worst = max(worst, abs(d.lower - lower[i, j]), abs(d.upper - upper[i, j]))
    return worst


def check_against_decide(arrays, share: float, experiments: int = 200) -> int:
    """Replays experiments through ``policy.decide`` (one step, SRM off: ratings only) and counts disagreements."""
    ua, na, ub, nb = (a[:experiments] for a in arrays)
    looks = ua.shape[1]
    policy = ExperimentPolicy(steps=(share,), max_duration_s=looks, min_exposures_for_srm=10**12)
    lower, upper = sequence_bounds(ua, na, ub, nb, alpha=policy.alpha)
    enough = np.minimum(na, nb) >= policy.min_ratings_per_arm
    at = first_stop(enough & ((lower > 0) | (upper < 0)))
    disagreements = 0
    for i in range(experiments):
        for look in range(looks):
            a = ArmStats(exposures=int(na[i, look]), ratings=int(na[i, look]), thumbs_up=int(ua[i, look]))
            b = ArmStats(exposures=int(nb[i, look]), ratings=int(nb[i, look]), thumbs_up=int(ub[i, look]))
            kw = {"planned_share": share, "step_index": 0, "step_age_s": look, "age_s": look}
            action = decide(champion=a, challenger=b, policy=policy, **kw).action
            if action in (Action.PROMOTE, Action.ROLLBACK):
                expected = Action.PROMOTE if upper[i, look] > 0 and lower[i, look] > 0 else Action.ROLLBACK
                disagreements += int(look != at[i] or action is not expected)
                break
        else:
            disagreements += int(at[i] != -1)
    return disagreements


def run(experiments: int, looks: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = []
    checks = {}
    for name, fixed_share in SHARES.items():
        shares = share_by_look(name, looks)
        for effect in EFFECTS:
            started = time.perf_counter()
            ua, na, ub, nb = arrays = simulate(rng, experiments, shares, effect)
            total = na + nb
            enough = np.minimum(na, nb) >= POLICY.min_ratings_per_arm
            z = z_statistic(ua, na, ub, nb)
            row = {"share": name, "effect": effect, "experiments": experiments, "alphas": {}}
            for alpha in ALPHAS:
                lower, upper = sequence_bounds(ua, na, ub, nb, alpha=alpha)
                z_crit = stats._z(1 - alpha / 2)
                row["alphas"][str(alpha)] = {
                    "always_valid": outcomes(enough & ((lower > 0) | (upper < 0)), lower > 0, total),
                    "peeking_z": outcomes(enough & (np.abs(z) > z_crit), z > 0, total),
                    "z_once_at_horizon": float((z[:, -1] > z_crit).mean()),
                }
            rows.append(row)
            if name == "0.05" and effect == 0.1:
                checks["max_abs_difference_vs_stats"] = check_against_stats(rng, arrays, POLICY.alpha)
                checks["decide_disagreements_of_200"] = int(check_against_decide(arrays, fixed_share))
            at = row["alphas"]["0.05"]
            print(
                f"share {name:>4} effect {effect:<5} promoted: always-valid {at['always_valid']['promoted']:.3f}, "
                f"peeking z {at['peeking_z']['promoted']:.3f}, z once {at['z_once_at_horizon']:.3f} "
                f"({time.perf_counter() - started:.1f} s)",
                flush=True,
            )
    return {"rows": rows, "checks": checks}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    colour = dict(zip(SHARES, ("C0", "C1", "C2", "C3"), strict=True))
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    ax = axes[0]
    ax.plot(ALPHAS, ALPHAS, "k--", label="rate = alpha")
    for name in SHARES:
        a_a = next(r for r in rows if r["share"] == name and r["effect"] == 0)
        for test, style in (("always_valid", "o-"), ("peeking_z", "x:")):
            rates = [a_a["alphas"][str(a)][test]["promoted"] for a in ALPHAS]
            ax.plot(ALPHAS, rates, style, color=colour[name], label=f"{test.replace('_', ' ')}, share {name}")
    ax.set(xlabel="alpha", ylabel="false-promotion rate (A/A)", title="False promotions, looked at every 20 ratings")
    ax.legend(fontsize=7)
    for name in SHARES:
        by_effect = [r for r in rows if r["share"] == name and r["effect"] > 0]
        effects = [r["effect"] for r in by_effect]
        power = [r["alphas"]["0.05"]["always_valid"]["promoted"] for r in by_effect]
        axes[1].plot(effects, power, "o-", color=colour[name], label=f"always valid, {name}")
        once = [r["alphas"]["0.05"]["z_once_at_horizon"] for r in by_effect]  # valid only if read once, no peeking
        axes[1].plot(effects, once, ":", color=colour[name], label=f"z read once at horizon, {name}")
        medians = [r["alphas"]["0.05"]["always_valid"]["median_ratings_to_promotion"] for r in by_effect]
        axes[2].plot(effects, [m if m is not None else np.nan for m in medians], "o-", color=colour[name], label=name)
    looks = result["config"]["looks"]
    axes[1].set(xlabel="effect (thumbs-up rate, over 0.5)", ylabel=f"promoted by {looks * BATCH} ratings",
                title="Power of the always-valid test (alpha 0.05)")  # fmt: skip
    axes[2].set(
        xlabel="effect", ylabel="median total ratings (both arms)", title="Ratings to promotion (promoted runs)"
    )
    axes[1].legend(title="challenger share", fontsize=7)
    axes[2].legend(title="challenger share", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=5000)
    parser.add_argument("--looks", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    result = run(args.experiments, args.looks, args.seed)
    result["config"] = {
        "experiments_per_row": args.experiments,
        "looks": args.looks,
        "ratings_per_look": BATCH,
        "base_rate": BASE_RATE,
        "min_ratings_per_arm": POLICY.min_ratings_per_arm,
        "tau": TAU,
        "ramp": "0.05 -> 0.25 -> 0.5, a step every 20 looks",
        "seed": args.seed,
        "method": stats.METHOD,
    }
    result["machine"] = {"python": platform.python_version(), "processor": platform.processor() or platform.machine()}
    result["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "experiment_stats.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, RESULTS / "experiment_stats.png")
    print(f"checks: {result['checks']}; {result['seconds']} s; results in {RESULTS}")


if __name__ == "__main__":
    main()
