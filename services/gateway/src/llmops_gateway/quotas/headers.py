"""Quota state in OpenAI's ``x-ratelimit-*`` response headers."""

from llmops_gateway.quotas.limiter import Reservation


def limit_headers(kind: str, limit: int, remaining: int, reset_s: float) -> dict[str, str]:
    suffix = {"rpm": "requests", "tpm": "tokens", "tpd": "tokens-day"}[kind]
    return {
        f"x-ratelimit-limit-{suffix}": str(limit),
        f"x-ratelimit-remaining-{suffix}": str(max(0, remaining)),
        f"x-ratelimit-reset-{suffix}": f"{reset_s:.3f}s",
    }


def reservation_headers(reservation: Reservation | None) -> dict[str, str]:
    """The tightest state of each limit kind, in OpenAI's ``x-ratelimit-*`` header names."""
    if reservation is None:
        return {}
    tightest: dict[str, tuple] = {}
    for state in reservation.states():
        kind = state[0]
        if kind not in tightest or state[2] < tightest[kind][2]:
            tightest[kind] = state
    headers = {}
    for state in tightest.values():
        headers.update(limit_headers(*state))
    return headers
