"""What the gateway counts of an upstream's ``usage``: whole, storable token counts, or nothing (then it estimates)."""

import pytest

from llmops_common.contracts.requestlog import MAX_SQL_INTEGER
from llmops_gateway.proxy.sse import usage_of


def test_plain_counts_and_cached_prompt_tokens_are_kept():
    usage = {"prompt_tokens": 11, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4}}
    assert usage_of(usage) == usage


@pytest.mark.parametrize(
    "usage",
    [
        "many",
        {"prompt_tokens": -1, "completion_tokens": 5},
        {"prompt_tokens": 1.5, "completion_tokens": 5},
        {"prompt_tokens": True, "completion_tokens": 5},
        {"prompt_tokens": MAX_SQL_INTEGER + 1, "completion_tokens": 5},  # the request log could not store it
        {"prompt_tokens": 3, "completion_tokens": 2**64},
    ],
)
def test_a_malformed_or_absurd_usage_counts_as_none(usage):
    assert usage_of(usage) is None


def test_cached_tokens_beyond_the_prompt_are_dropped():
    usage = usage_of({"prompt_tokens": 3, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 9}})
    assert usage == {"prompt_tokens": 3, "completion_tokens": 1}
