"""One key and route's limits: the script call encoded once, and quota leased ahead of use.

Leases: a busy key would make every request a Redis round trip, and on Redis a script run (with many replicas,
a ceiling on the whole platform's throughput). So with a request's own cost a process takes up to
``lease_s`` seconds of that key's recent traffic more (never over 1/100 of a limit) and spends it locally
until it runs out or its window ends. One request at a time asks for the next lease; the others that find the
lease spent meanwhile wait for it instead of each asking Redis (at 64 concurrent requests those bursts were
5-7% of a busy key's requests). Nothing is ever admitted beyond a limit: what a process spends was reserved
in Redis first. What it leased and did not spend stays counted for the rest of that window, so a
limit may refuse up to one lease per process early, never late. Quiet keys and small limits (a lease under 2)
are checked in Redis on every request, exactly.

Budgets in currency (per key and per team, per UTC day and calendar month) are limits of the same script call,
costing a request's worst-case price. A plan with a budget never leases: every request of it is reserved in
Redis (one round trip, as without leases), so a budget admits exactly what it buys, on any number of replicas.
"""

import asyncio
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from llmops_gateway.limits import Limits
from llmops_gateway.money import BudgetNanos

_WINDOWS = {"rpm": 60, "tpm": 60, "tpd": 86_400, "cost_day": 86_400, "cost_month": 0}  # 0: the calendar month
BUDGET_KINDS = ("cost_day", "cost_month")
_MAX_LEASE_SHARE = 100  # a lease is at most 1/100 of its limit
_RATE_PERIOD_S = 1.0  # the traffic rate that sizes leases is measured over this


class Lease:
    """Per limit: what is left to spend here, its window, what Redis had left for others, when the window ends."""

    __slots__ = ("balance", "ends_at", "remaining", "windows")

    def __init__(self, balance: list[int], windows: list[int], remaining: list[int], ends_at: list[float]) -> None:
        self.balance, self.windows, self.remaining, self.ends_at = balance, windows, remaining, ends_at


@dataclass(slots=True)
class Reservation:
    """What one request reserved: its token estimate and, per limit that is set, the state after it."""

    tokens: int
    plan: "Plan | None" = None  # None: no limit applies
    windows: list[int] = field(default_factory=list)  # per limit: the window its cost was counted in
    remaining: list[int] = field(default_factory=list)
    reset_s: list[float] = field(default_factory=list)
    cost: int = 0  # the worst-case price reserved against budgets (nano-units)

    def token_counters(self) -> list[str]:
        """The counters (of this window) that hold the token estimate."""
        if self.plan is None:
            return []
        return [f"{base}:{self.windows[i]}" for i, base in self.plan.token_counter_bases]

    def cost_counters(self) -> list[str]:
        """The budget counters (of this window) that hold the worst-case price."""
        if self.plan is None:
            return []
        return [f"{base}:{self.windows[i]}" for i, base in self.plan.cost_counter_bases]

    def held(self) -> "HeldReservation":
        """The reservation as another process holds it until the request ends (a batch worker's engine line)."""
        return HeldReservation(self.tokens, self.cost, tuple(self.token_counters()), tuple(self.cost_counters()))


@dataclass(slots=True, frozen=True)
class HeldReservation:
    """What reconciling a reservation needs, without the plan it came from: the estimate, the worst-case price and
    the counters that hold them. It settles in whichever gateway replica the request ends in."""

    tokens: int
    cost: int
    token_counters_held: tuple[str, ...]
    cost_counters_held: tuple[str, ...]

    def token_counters(self) -> list[str]:
        return list(self.token_counters_held)

    def cost_counters(self) -> list[str]:
        return list(self.cost_counters_held)


class Plan:
    """One key and route's limits, the reserve script's arguments for them, and this process's lease."""

    def __init__(
        self,
        prefix: str,
        key_id: str,
        key_limits: Limits,
        route: str,
        route_limits: Limits,
        lease_s: float,
        key_budget: BudgetNanos,
        team: str | None,
        team_budget: BudgetNanos,
    ):
        self.limits: list[tuple[str, str, int]] = []  # (scope, kind, limit), in the script's order
        self.fixed: list[tuple[str, int, int]] = []  # per limit: its counter, window and limit; cost and lease follow
        self.token_counter_bases: list[tuple[int, str]] = []  # (index in limits, counter without its window)
        for scope, limits, base in (
            ("key", key_limits, f"{prefix}{{{key_id}}}"),
            ("route", route_limits, f"{prefix}{{{key_id}}}:r:{route}"),
        ):
            for kind, limit in (("rpm", limits.rpm), ("tpm", limits.tpm), ("tpd", limits.tpd)):
                if limit is not None:
                    if kind != "rpm":
                        self.token_counter_bases.append((len(self.limits), f"{base}:{kind}"))
                    self.limits.append((scope, kind, limit))
                    self.fixed.append((f"{base}:{kind}", _WINDOWS[kind], limit))
        self.cost_counter_bases: list[tuple[int, str]] = []
        budgets = [("key", key_id, key_budget, f"{prefix}{{{key_id}}}")]
        if team is not None:
            budgets.append(("team", team, team_budget, f"{prefix}{{team:{team}}}"))
        self.owners: list[str] = [key_id] * len(self.limits)  # per limit: whose it is (a key's id or a team)
        for scope, owner, budget, base in budgets:
            for kind, limit in (("cost_day", budget.daily), ("cost_month", budget.monthly)):
                if limit is not None:
                    self.cost_counter_bases.append((len(self.limits), f"{base}:{kind}"))
                    self.limits.append((scope, kind, limit))
                    self.fixed.append((f"{base}:{kind}", _WINDOWS[kind], limit))
                    self.owners.append(owner)
        self.budgeted = bool(self.cost_counter_bases)
        self.lease: Lease | None = None
        # Set while a call asks Redis for a lease: requests that find the lease spent meanwhile wait for it.
        self.refill: asyncio.Event | None = None
        self._lease_s = lease_s
        self._lease_requests = self._lease_tokens = 0
        self._since, self._requests, self._tokens = time.monotonic(), 0, 0

    def script_args(self, tokens: int, leases: list[int], money: int = 0) -> list:
        """The reserve script's ARGV (quotas/reserve.lua)."""
        args: list = [len(self.limits)]
        for fixed, cost, lease in zip(self.fixed, self.costs(tokens, money), leases, strict=True):
            args += (*fixed, cost, lease)
        return args

    def costs(self, tokens: int, money: int = 0) -> list[int]:
        """A request's cost for each limit: one request, its tokens, or its price."""
        return [1 if kind == "rpm" else money if kind in BUDGET_KINDS else tokens for _, kind, _ in self.limits]

    def note(self, tokens: int, now: float) -> None:
        """Counts a request towards the traffic rate that sizes the next lease."""
        self._requests += 1
        self._tokens += tokens
        elapsed = now - self._since
        if elapsed >= _RATE_PERIOD_S:
            self._lease_requests = int(self._requests / elapsed * self._lease_s)
            self._lease_tokens = int(self._tokens / elapsed * self._lease_s)
            self._since, self._requests, self._tokens = now, 0, 0

    def wanted_leases(self, now: float) -> list[int]:
        """Per limit, how much to lease with the next call (0 where what is left here is still enough)."""
        if self.budgeted:  # exact budgets: nothing is ever held back in a lease
            return [0] * len(self.limits)
        lease, sizes = self.lease, []
        for i, (_, kind, limit) in enumerate(self.limits):
            size = min(self._lease_requests if kind == "rpm" else self._lease_tokens, limit // _MAX_LEASE_SHARE)
            if size < 2 or (lease is not None and lease.ends_at[i] > now and lease.balance[i] >= size):
                size = 0
            sizes.append(size)
        return sizes

    def spend(self, tokens: int, now: float) -> Reservation | None:
        """Takes a request's cost from the lease, if every limit's lease is current and has enough left."""
        lease = self.lease
        if lease is None:
            return None
        balance, ends_at, costs = lease.balance, lease.ends_at, self.costs(tokens)
        if any(end <= now or left < cost for end, left, cost in zip(ends_at, balance, costs, strict=True)):
            return None
        for i, cost in enumerate(costs):
            balance[i] -= cost
        return self.reservation(tokens, lease.windows, lease.remaining, lease.ends_at, now)

    @contextmanager
    def refilling(self, leases: list[int]):
        """Marks a script call that asks for a lease: requests that find the lease spent meanwhile wait for it."""
        if not any(leases):
            yield
            return
        self.refill = refill = asyncio.Event()
        try:
            yield
        finally:
            self.refill = None
            refill.set()

    def reservation(
        self, tokens: int, windows: list[int], remaining: list[int], ends_at: list[float], now: float, cost: int = 0
    ) -> Reservation:
        """Remaining counts what this process still holds leased in the same window: it is not used yet."""
        lease = self.lease
        if lease is not None:
            remaining = [
                r + (lease.balance[i] if lease.windows[i] == w else 0)
                for i, (r, w) in enumerate(zip(remaining, windows, strict=True))
            ]
        return Reservation(tokens, self, windows, remaining, [max(0.0, end - now) for end in ends_at], cost)

    def granted(self, windows: list[int], remaining: list[int], ends_at: list[float], leased: list[int]) -> None:
        """A script call's grant: added to what is left of a lease in the same windows, the rest dropped."""
        old = self.lease
        balance = [
            leased[i] + (old.balance[i] if old is not None and old.windows[i] == windows[i] else 0)
            for i in range(len(self.limits))
        ]
        self.lease = Lease(balance, windows, remaining, ends_at)
