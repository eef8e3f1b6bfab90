"""Variant choice and circuit breakers as plain units: no processes, no network."""

import math
from collections import Counter

import pytest
from pydantic import ValidationError

from llmops_gateway.routing import breaker as breaker_module
from llmops_gateway.routing.breaker import Admission, BreakerState, CircuitBreakers
from llmops_gateway.routing.schemas import RouteSpec, Variant
from llmops_gateway.routing.selection import candidates, choose

USERS = [f"user-{i}" for i in range(20_000)]
SIGMAS = 4.5  # a binomial count is outside mean ± 4.5 sigma with probability about 7e-6


def bound(n: int, p: float) -> float:
    """Allowed deviation of a Binomial(n, p) count from n*p: 4.5 standard deviations."""
    return SIGMAS * math.sqrt(n * p * (1 - p))


def v(name: str, weight: float = 1.0) -> Variant:
    return Variant(name=name, upstream=f"http://{name}.invalid:8000/v1", model=f"{name}-model", weight=weight)


def spec(*variants: Variant, sticky: bool = True, fallbacks=()) -> RouteSpec:
    return RouteSpec(variants=list(variants), sticky=sticky, fallbacks=list(fallbacks))


def assignment(route_spec: RouteSpec, route: str = "chat") -> dict[str, str]:
    return {user: choose(route, route_spec, user=user).name for user in USERS}


def assert_shares(counts: Counter, weights: dict[str, float], n: int) -> None:
    total = sum(weights.values())
    for name, weight in weights.items():
        p = weight / total
        assert abs(counts[name] - n * p) <= bound(n, p), (name, counts[name], n * p, bound(n, p))


# --- choice ---


def test_sticky_choice_is_deterministic_per_user_and_ignores_variant_order():
    forward = spec(v("a", 70), v("b", 20), v("c", 10))
    backward = spec(v("c", 10), v("b", 20), v("a", 70))
    first = assignment(forward)
    assert assignment(forward) == first
    # Rendezvous hashing scores each (user, variant) pair on its own: list order plays no part.
    assert assignment(backward) == first
    # Different users do land on different variants (the hash is not constant).
    assert len(set(first.values())) == 3


def test_sticky_shares_match_weights():
    # 20k users; for 70/20/10 the allowed deviations are about ±292, ±255 and ±191 users.
    counts = Counter(assignment(spec(v("a", 70), v("b", 20), v("c", 10))).values())
    assert_shares(counts, {"a": 70, "b": 20, "c": 10}, len(USERS))


def test_weight_change_moves_only_the_users_that_must_move():
    before = assignment(spec(v("a", 50), v("b", 50)))
    after = assignment(spec(v("a", 60), v("b", 40)))
    moved = Counter((before[u], after[u]) for u in USERS if before[u] != after[u])
    # Nobody leaves the variant that gained weight.
    assert moved[("a", "b")] == 0
    # Exactly b's lost share (10% of users) moves, give or take 4.5 sigma (±191 of 2000).
    assert abs(moved[("b", "a")] - 0.1 * len(USERS)) <= bound(len(USERS), 0.1), moved


def test_adding_a_variant_only_moves_users_to_it():
    before = assignment(spec(v("a"), v("b")))
    after = assignment(spec(v("a"), v("b"), v("c")))
    moved = Counter((before[u], after[u]) for u in USERS if before[u] != after[u])
    assert set(moved) <= {("a", "c"), ("b", "c")}, moved
    assert abs(sum(moved.values()) - len(USERS) / 3) <= bound(len(USERS), 1 / 3), moved


def test_zero_weight_variant_is_never_chosen():
    sticky = spec(v("a", 1), v("off", 0), v("b", 1))
    assert "off" not in set(assignment(sticky).values())
    random_split = spec(v("a", 1), v("off", 0), sticky=False)
    assert {choose("chat", random_split, user="u").name for _ in range(2000)} == {"a"}


@pytest.mark.parametrize("sticky, user", [(False, "same-user"), (True, None)])
def test_random_split_matches_weights(sticky, user):
    """Non-sticky routes (or requests without any identity) draw at random by weight, per request."""
    route_spec = spec(v("a", 75), v("b", 25), sticky=sticky)
    n = 20_000
    counts = Counter(choose("chat", route_spec, user=user).name for _ in range(n))
    assert_shares(counts, {"a": 75, "b": 25}, n)  # ±275 requests around 15000 / 5000


# --- candidates and fallbacks ---


def test_candidates_put_the_choice_first_then_fallbacks_without_repeats():
    extra = v("z")
    route_spec = spec(v("a", 1), v("b", 0), v("c", 0), fallbacks=["b", "a", extra, "c", "b"])
    assert [c.name for c in candidates("chat", route_spec, user="u")] == ["a", "b", "z", "c"]
    resolved = candidates("chat", route_spec, user="u")
    # String fallbacks resolve to the route's own variants (upstream and model included).
    assert resolved[1] == route_spec.variants[1] and resolved[2] == extra


def test_candidates_follow_the_sticky_choice():
    route_spec = spec(v("a"), v("b"), fallbacks=["a", "b"])
    for user in USERS[:200]:
        names = [c.name for c in candidates("chat", route_spec, user=user)]
        assert names[0] == choose("chat", route_spec, user=user).name
        assert sorted(names) == ["a", "b"]


@pytest.mark.parametrize(
    "document",
    [
        {"variants": [{"name": "a", "upstream": "http://x/v1", "model": "m"}] * 2},
        {"variants": [{"name": "a", "upstream": "http://x/v1", "model": "m", "weight": 0}]},
        {"variants": [{"name": "a", "upstream": "http://x/v1", "model": "m"}], "fallbacks": ["nope"]},
        {"variants": []},
        {"variants": [{"name": "a", "upstream": "http://x/v1", "model": "m", "weight": -1}]},
        {"variants": [{"name": "a", "upstream": "not a url", "model": "m"}]},
        {"variants": [{"name": "a", "upstream": "http://x/v1", "model": "m"}], "limits": {"rpm": 0}},
    ],
    ids=[
        "duplicate-names",
        "all-weights-zero",
        "missing-fallback",
        "no-variants",
        "negative-weight",
        "bad-url",
        "zero-limit",
    ],
)
def test_invalid_route_specs_are_rejected(document):
    with pytest.raises(ValidationError):
        RouteSpec.model_validate(document)


# --- circuit breaker ---


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(breaker_module, "time", clock)  # the breaker's own view of time only
    return clock


@pytest.fixture
def changes():
    return []


@pytest.fixture
def breakers(clock, changes):
    return CircuitBreakers(threshold=3, cooldown_s=1.0, on_change=lambda r, v, s: changes.append((r, v, s)))


def fail(breakers, times, route="r", variant="a"):
    for _ in range(times):
        assert breakers.allow(route, variant)
        breakers.record_failure(route, variant)


def test_opens_after_threshold_consecutive_failures(breakers, changes):
    fail(breakers, 2)
    assert breakers.state("r", "a") is BreakerState.closed and breakers.allow("r", "a")
    assert changes == []
    breakers.record_failure("r", "a")
    assert breakers.state("r", "a") is BreakerState.open
    assert not breakers.allow("r", "a")
    assert changes == [("r", "a", BreakerState.open)]
    # Other variants and routes are not affected.
    assert breakers.allow("r", "b") and breakers.allow("other", "a")


def test_success_resets_the_failure_count(breakers, changes):
    fail(breakers, 2)
    breakers.record_success("r", "a")
    fail(breakers, 2)
    assert breakers.state("r", "a") is BreakerState.closed and breakers.allow("r", "a")
    assert changes == []


def test_one_trial_after_cooldown_and_success_closes(breakers, clock, changes):
    fail(breakers, 3)
    clock.now += 0.99
    assert not breakers.allow("r", "a")
    clock.now += 0.02
    assert breakers.state("r", "a") is BreakerState.half_open
    assert breakers.allow("r", "a")  # the trial
    assert not breakers.allow("r", "a") and not breakers.allow("r", "a")  # exactly one while it runs
    clock.now += 10
    assert not breakers.allow("r", "a")  # still one, however long the trial takes
    breakers.record_success("r", "a")
    assert breakers.state("r", "a") is BreakerState.closed
    assert all(breakers.allow("r", "a") for _ in range(5))
    assert changes == [("r", "a", s) for s in (BreakerState.open, BreakerState.half_open, BreakerState.closed)]
    # Closed for real: the count starts again from zero.
    fail(breakers, 2)
    assert breakers.state("r", "a") is BreakerState.closed


def test_trial_failure_reopens_for_another_cooldown(breakers, clock, changes):
    fail(breakers, 3)
    clock.now += 1.5
    assert breakers.allow("r", "a")
    breakers.record_failure("r", "a")  # one failed trial is enough
    assert breakers.state("r", "a") is BreakerState.open
    clock.now += 0.9
    assert not breakers.allow("r", "a")
    clock.now += 0.2
    assert breakers.allow("r", "a")
    assert changes == [
        ("r", "a", s) for s in (BreakerState.open, BreakerState.half_open, BreakerState.open, BreakerState.half_open)
    ]


def test_abandoned_trial_frees_the_slot(breakers, clock):
    fail(breakers, 3)
    clock.now += 1.5
    trial = breakers.allow("r", "a")
    assert trial is Admission.trial
    assert not breakers.allow("r", "a")
    breakers.record_abandoned("r", "a", trial)  # the client went away: proves nothing, someone else may try
    assert breakers.allow("r", "a")
    assert not breakers.allow("r", "a")


def test_abandoning_an_older_request_does_not_free_the_trial_slot(breakers, clock):
    """A request let through while the circuit was still closed (say, stuck on a hung upstream) whose client
    leaves while the trial runs proves nothing about the trial: it must not let a second trial through."""
    older = breakers.allow("r", "a")  # request R goes out while the circuit is closed, and hangs
    assert older is Admission.allowed
    fail(breakers, 3)  # others fail meanwhile: open
    clock.now += 1.5
    assert breakers.allow("r", "a") is Admission.trial  # the trial T
    breakers.record_abandoned("r", "a", older)  # R's client gives up (the gateway calls this for any cancelled request)
    assert not breakers.allow("r", "a"), "a second trial while T is still in flight"


def test_real_clock_cooldown():
    """The same cycle on the real monotonic clock, with a short cooldown."""
    import time

    changes = []
    breakers = CircuitBreakers(threshold=1, cooldown_s=0.05, on_change=lambda r, v, s: changes.append(s))
    breakers.record_failure("r", "a")
    assert not breakers.allow("r", "a")
    time.sleep(0.06)
    assert breakers.allow("r", "a") and not breakers.allow("r", "a")
    breakers.record_success("r", "a")
    assert breakers.allow("r", "a")
    assert changes == [BreakerState.open, BreakerState.half_open, BreakerState.closed]
