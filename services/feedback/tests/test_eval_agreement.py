"""Cohen's kappa between a scorer and people: a hand-checked table, then seeded simulations of judges of known
quality against scikit-learn's computation, and the readout's verdict on how far to trust each."""

import random

import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from llmops_feedback.evaluation.agreement import MIN_N, cohen_kappa


def _pairs(table: dict[tuple[bool, bool], int]) -> list[tuple[bool, bool]]:
    return [pair for pair, n in table.items() for _ in range(n)]


def test_hand_checked_table():
    # 50 requests. Human up & judge pass 20, human up & judge fail 5, human down & judge pass 10, both down 15.
    # observed = 35/50 = 0.70; human up 25/50, judge pass 30/50; expected = .5*.6 + .5*.4 = 0.50;
    # kappa = (0.70 - 0.50) / (1 - 0.50) = 0.40. SE = sqrt(.7*.3/50)/.5 = 0.12961, so 95% [0.146, 0.654].
    result = cohen_kappa(_pairs({(True, True): 20, (True, False): 5, (False, True): 10, (False, False): 15}))
    assert result.n == 50
    assert result.confusion == {"up": {"up": 20, "down": 5}, "down": {"up": 10, "down": 15}}
    assert result.observed == pytest.approx(0.70)
    assert result.expected == pytest.approx(0.50)
    assert result.kappa == pytest.approx(0.40)
    assert result.interval == pytest.approx((0.40 - 1.959964 * 0.129615, 0.40 + 1.959964 * 0.129615), abs=1e-5)
    assert result.trust.startswith("Do not rely")  # the interval reaches down to 0.15


def test_undefined_and_empty():
    assert cohen_kappa([]).kappa is None and cohen_kappa([]).n == 0
    same = cohen_kappa([(True, True)] * 40)  # everyone up, judge always passes: chance explains all of it
    assert same.kappa is None and "undefined" in same.trust


def _simulate(rng: random.Random, n: int, accuracy: float, up_rate: float = 0.7) -> list[tuple[bool, bool]]:
    """People rate up with ``up_rate``; the judge agrees with each rating with probability ``accuracy``."""
    pairs = []
    for _ in range(n):
        human = rng.random() < up_rate
        pairs.append((human, human if rng.random() < accuracy else not human))
    return pairs


@pytest.mark.parametrize("seed", range(20))
def test_matches_scikit_learn_on_simulated_judges(seed):
    rng = random.Random(seed)
    pairs = _simulate(rng, n=rng.randint(20, 400), accuracy=rng.uniform(0.5, 1.0), up_rate=rng.uniform(0.2, 0.8))
    humans, judge = [h for h, _ in pairs], [j for _, j in pairs]
    result = cohen_kappa(pairs)
    if len(set(humans)) == 1 and len(set(judge)) == 1:
        assert result.kappa is None
        return
    assert result.kappa == pytest.approx(cohen_kappa_score(humans, judge), abs=1e-12)
    (dd, du), (ud, uu) = confusion_matrix(humans, judge, labels=[False, True])
    assert result.confusion == {"up": {"up": uu, "down": ud}, "down": {"up": du, "down": dd}}


def test_the_interval_covers_the_true_kappa_about_95_percent_of_the_time():
    # A judge agreeing with each rating with probability a, ratings up with rate p: the true kappa follows from the
    # cells' probabilities. 400 seeded studies of 200 requests; the large-sample interval should cover ~95%.
    a, p = 0.85, 0.7
    q = p * a + (1 - p) * (1 - a)  # judge pass rate
    true = (a - (p * q + (1 - p) * (1 - q))) / (1 - (p * q + (1 - p) * (1 - q)))
    rng = random.Random(1234)
    intervals = [cohen_kappa(_simulate(rng, 200, a, p)).interval for _ in range(400)]
    covered = sum(low <= true <= high for low, high in intervals)
    assert 0.92 <= covered / 400 <= 0.98, covered


def test_the_readout_says_how_far_to_trust_the_scorer():
    rng = random.Random(7)
    good = cohen_kappa(_simulate(rng, 400, accuracy=0.97, up_rate=0.5))
    middling = cohen_kappa(_simulate(rng, 400, accuracy=0.75, up_rate=0.5))
    coin = cohen_kappa(_simulate(rng, 400, accuracy=0.5, up_rate=0.5))
    few = cohen_kappa(_simulate(rng, MIN_N - 1, accuracy=0.97, up_rate=0.5))
    assert good.trust.startswith("Trust this scorer"), good.trust
    assert middling.trust.startswith("Use this scorer as a guardrail"), middling.trust
    assert coin.trust.startswith("Do not rely"), coin.trust
    assert few.trust.startswith("Too few"), few.trust
