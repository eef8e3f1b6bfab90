"""A circuit breaker per (route, variant): stop sending to an upstream that keeps failing, probe it now and then."""

import time
from dataclasses import dataclass
from enum import IntEnum


class BreakerState(IntEnum):
    closed = 0
    open = 1
    half_open = 2


class Admission(IntEnum):
    """What ``allow`` grants: falsy when refused. Only the trial's own end may free the trial slot."""

    denied = 0
    allowed = 1
    trial = 2


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class CircuitBreakers:
    """``threshold`` consecutive failures open a circuit; after ``cooldown_s`` one trial request is let
    through (half-open): success closes it, failure opens it again for another cooldown."""

    def __init__(self, *, threshold: int, cooldown_s: float, on_change=None) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._circuits: dict[tuple[str, str], _Circuit] = {}
        self._on_change = on_change or (lambda route, variant, state: None)

    def state(self, route: str, variant: str) -> BreakerState:
        circuit = self._circuits.get((route, variant))
        if circuit is None or circuit.opened_at is None:
            return BreakerState.closed
        if circuit.probing or time.monotonic() - circuit.opened_at >= self._cooldown_s:
            return BreakerState.half_open
        return BreakerState.open

    def allow(self, route: str, variant: str) -> Admission:
        circuit = self._circuits.get((route, variant))
        if circuit is None or circuit.opened_at is None:
            return Admission.allowed
        if circuit.probing or time.monotonic() - circuit.opened_at < self._cooldown_s:
            return Admission.denied
        circuit.probing = True  # exactly one trial request at a time
        self._on_change(route, variant, BreakerState.half_open)
        return Admission.trial

    def record_success(self, route: str, variant: str) -> None:
        circuit = self._circuits.get((route, variant))
        if circuit is None:
            return
        was_open = circuit.opened_at is not None
        circuit.failures, circuit.opened_at, circuit.probing = 0, None, False
        if was_open:
            self._on_change(route, variant, BreakerState.closed)

    def record_abandoned(self, route: str, variant: str, admission: Admission) -> None:
        """The request was cancelled before the upstream answered: it proves nothing either way.
        If it was the trial, the next request may try; any other request leaves the trial running."""
        circuit = self._circuits.get((route, variant))
        if circuit is not None and admission is Admission.trial:
            circuit.probing = False

    def record_failure(self, route: str, variant: str) -> None:
        circuit = self._circuits.setdefault((route, variant), _Circuit())
        circuit.failures += 1
        if circuit.probing or circuit.failures >= self._threshold:
            circuit.opened_at, circuit.probing = time.monotonic(), False
            self._on_change(route, variant, BreakerState.open)
