"""Quota state in OpenAI's ``x-ratelimit-*`` response headers."""

from llmops_gateway.quotas.plan import Reservation

_SUFFIXES = {"rpm": "requests", "tpm": "tokens", "tpd": "tokens-day"}
# Per limit kind: the names of its limit, remaining and reset headers (built once, not per response).
_NAMES = {
    kind: (f"x-ratelimit-limit-{suffix}", f"x-ratelimit-remaining-{suffix}", f"x-ratelimit-reset-{suffix}")
    for kind, suffix in _SUFFIXES.items()
}


def limit_headers(kind: str, limit: int, remaining: int, reset_s: float) -> dict[str, str]:
    limit_name, remaining_name, reset_name = _NAMES[kind]
    return {limit_name: str(limit), remaining_name: str(max(0, remaining)), reset_name: f"{reset_s:.3f}s"}


def reservation_headers(reservation: Reservation | None) -> dict[str, str]:
    """The tightest state of each limit kind (key or route), in OpenAI's ``x-ratelimit-*`` header names."""
    if reservation is None or reservation.plan is None:
        return {}
    limits, remaining = reservation.plan.limits, reservation.remaining
    tightest: dict[str, int] = {}  # kind -> index of its limit with the least remaining
    for i, (_, kind, _) in enumerate(limits):
        if kind not in _NAMES:  # budgets: money, not OpenAI's rate limits
            continue
        if kind not in tightest or remaining[i] < remaining[tightest[kind]]:
            tightest[kind] = i
    headers = {}
    for kind, i in tightest.items():
        headers.update(limit_headers(kind, limits[i][2], remaining[i], reservation.reset_s[i]))
    return headers
