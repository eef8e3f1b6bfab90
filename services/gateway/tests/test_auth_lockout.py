"""Repeated bad API keys (and admin tokens) are refused with 429 for the rest of a window, counted in Redis.

Two replicas on one Redis and one SQLite database: a count made on one is seen by the other. Clients are told apart
by X-Forwarded-For (the gateways trust the test's own address as a proxy), each test uses fresh addresses, so the
tests share one gateway and need no waiting for windows to end.
"""

import secrets
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmops_gateway.keys.lockout import FailedAuthLimiter, LockoutMetrics, LockoutPolicy

LIMIT, PREFIX_LIMIT = 3, 5


@pytest.fixture(scope="module")
def gateway(make_gateway, llmops_state_dir):
    return make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'lockout-{uuid.uuid4().hex[:6]}.db'}",
        replicas=2,
        GATEWAY_AUTH_FAILURE_LIMIT=str(LIMIT),
        GATEWAY_AUTH_FAILURE_PREFIX_LIMIT=str(PREFIX_LIMIT),
        GATEWAY_AUTH_FAILURE_WINDOW_S="120",
        GATEWAY_TRUSTED_PROXIES='["127.0.0.1"]',
    )


@pytest.fixture(scope="module")
def valid_key(gateway) -> str:
    return gateway.create_key()[1]


def new_address() -> str:
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(255) + 1}"


def models(gateway, key: str, address: str, replica: int = 0) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", "x-forwarded-for": address}
    return httpx.get(f"{gateway.replicas[replica].url}/v1/models", headers=headers, timeout=10)


def bad_key() -> str:
    return "sk-llmops-" + secrets.token_urlsafe(32)


def test_repeated_bad_keys_get_429_then_even_a_valid_key_from_that_client(gateway, valid_key):
    address = new_address()
    assert [models(gateway, bad_key(), address).status_code for _ in range(LIMIT)] == [401] * LIMIT
    refused = models(gateway, bad_key(), address)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_failed_auth"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 120
    # Refused before the key is checked: a blocked guesser cannot tell a right guess from a wrong one.
    assert models(gateway, valid_key, address).status_code == 429
    # Malformed keys count too, and are refused the same way.
    assert models(gateway, "not-a-key", address).status_code == 429


def test_other_clients_with_valid_keys_are_unaffected(gateway, valid_key):
    blocked = new_address()
    for _ in range(LIMIT + 1):
        models(gateway, bad_key(), blocked)
    assert models(gateway, valid_key, new_address()).status_code == 200
    assert models(gateway, bad_key(), new_address()).status_code == 401  # another client's first failure


def test_the_count_is_shared_by_replicas(gateway):
    address = new_address()
    for _ in range(LIMIT):
        assert models(gateway, bad_key(), address, replica=0).status_code == 401
    assert models(gateway, bad_key(), address, replica=1).status_code == 429


def test_a_distributed_guess_at_one_key_prefix_is_refused(gateway):
    prefix = "sk-llmops-" + secrets.token_urlsafe(8)[:6]
    statuses = [models(gateway, prefix + secrets.token_urlsafe(30), new_address()).status_code for _ in range(6)]
    assert statuses == [401] * PREFIX_LIMIT + [429]


def test_failures_and_lockouts_are_counted_in_metrics(gateway):
    address = new_address()
    for _ in range(LIMIT + 1):
        models(gateway, bad_key(), address)
    text = httpx.get(f"{gateway.replicas[0].url}/metrics", timeout=10).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("llmops_gateway_auth_failures_total", (("surface", "api"),))] >= LIMIT
    assert samples[("llmops_gateway_auth_lockouts_total", (("by", "address"), ("surface", "api")))] >= 1


def test_bad_admin_tokens_are_refused_the_same_way(gateway):
    headers = {"authorization": "Bearer not-the-admin-token", "x-forwarded-for": new_address()}
    url = f"{gateway.url}/admin/keys"
    statuses = [httpx.get(url, headers=headers, timeout=10).status_code for _ in range(LIMIT + 1)]
    assert statuses == [401] * LIMIT + [429]
    # the right token from another client is unaffected
    other = {"authorization": f"Bearer {gateway.admin_token}", "x-forwarded-for": new_address()}
    assert httpx.get(url, headers=other, timeout=10).status_code == 200


class _DownRedis:
    """Every call fails as an unreachable Redis does."""

    def pipeline(self, **_):
        raise ConnectionError("redis down")


@pytest.mark.parametrize(("fail_open", "expected"), [(True, [None] * 4), (False, [None] * 3 + [429])])
async def test_redis_down_honours_the_quota_failure_mode(fail_open, expected):
    from prometheus_client import CollectorRegistry

    from llmops_common.errors import APIError

    policy = LockoutPolicy(limit=3, prefix_limit=0, window_s=60, fail_open=fail_open)
    limiter = FailedAuthLimiter(_DownRedis(), prefix="t:", policy=policy, metrics=LockoutMetrics(CollectorRegistry()))
    outcomes = []
    for _ in range(4):
        try:
            await limiter.check("api", "10.0.0.1")
            outcomes.append(None)
        except APIError as exc:
            outcomes.append(exc.status)
        await limiter.failed("api", "10.0.0.1")
    assert outcomes == expected
