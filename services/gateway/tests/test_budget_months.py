"""Monthly budgets count in calendar months (UTC) on Redis's clock: the Lua date arithmetic, run on a real Redis,
agrees with Python's calendar at every month edge and on a seeded sample of times from 1970 to 2200."""

import random
from datetime import UTC, datetime
from importlib.resources import files

import pytest
import redis

_PROBE = "\nlocal id, left = calendar_month(tonumber(ARGV[1]))\nreturn {id, left}\n"


@pytest.fixture(scope="module")
def calendar_month(redis_url):
    client = redis.Redis.from_url(redis_url)
    script = client.register_script(files("llmops_gateway.quotas").joinpath("month.lua").read_text() + _PROBE)
    yield lambda now: tuple(script(args=[now]))
    client.close()


def expected(now: int) -> tuple[int, int]:
    at = datetime.fromtimestamp(now, UTC)
    following = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return at.year * 12 + at.month - 1, int(following.timestamp()) - now


def test_every_month_edge_rolls_over(calendar_month):
    for year in (1970, 1999, 2000, 2024, 2026, 2027, 2028, 2100, 2199):
        for month in range(1, 13):
            start = int(datetime(year, month, 1, tzinfo=UTC).timestamp())
            for now in (start - 1, start, start + 1):
                assert calendar_month(now) == expected(now), datetime.fromtimestamp(now, UTC)


def test_december_rolls_into_january_and_february_29_exists_in_leap_years(calendar_month):
    new_year = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    assert calendar_month(new_year - 1) == (2026 * 12 + 11, 1)
    assert calendar_month(new_year) == (2027 * 12, 31 * 86400)
    leap_day = int(datetime(2028, 2, 29, 12, tzinfo=UTC).timestamp())
    assert calendar_month(leap_day) == (2028 * 12 + 1, 12 * 3600)


def test_random_times_agree_with_the_calendar(calendar_month):
    rng = random.Random(20)
    end = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp())
    for _ in range(2000):
        now = rng.randrange(0, end)
        assert calendar_month(now) == expected(now), datetime.fromtimestamp(now, UTC)
