"""A batch is held to its key's and routes' limits and budgets at submission, before any worker runs a line: one that
could never fit a route's daily token limit, or its key's or team's budget in currency, is refused with a clear code,
the worst case counted as the online quota stage reserves it; one within every limit is accepted and runs."""

import io

import openai
import pytest

from llmops_testkit.batch import FINISHED, chat_line, jsonl, read_jsonl, sdk, submit, wait_for
from llmops_testkit.gateway import variant
from llmops_testkit.spend import create_team, set_price, unique


def test_a_batch_over_the_daily_budget_is_refused_at_submission(batch_gateway, route):
    _, key = batch_gateway.create_key(limits={"tpd": 1000})
    client = sdk(batch_gateway, key)
    small = client.files.create(
        file=("s.jsonl", io.BytesIO(jsonl([chat_line(f"s{i}", route, max_tokens=50) for i in range(5)]))),
        purpose="batch",
    )
    accepted = client.batches.create(input_file_id=small.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert accepted.status == "validating"
    large = client.files.create(
        file=("l.jsonl", io.BytesIO(jsonl([chat_line(f"l{i}", route, max_tokens=100) for i in range(12)]))),
        purpose="batch",
    )
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=large.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert refused.value.body["code"] == "batch_over_daily_budget"
    assert "daily budget of 1000" in refused.value.body["message"]
    assert accepted.id in {b.id for b in client.batches.list()} and len(client.batches.list().data) == 1


# A chat line of ``chat_line`` ("hello") is estimated as 3 + 4 + 2 = 9 prompt tokens, plus its max_tokens.
PROMPT = 9


def test_a_batch_over_a_route_daily_limit_is_refused_at_submission(batch_gateway, upstreams):
    # The route caps max_tokens at 50: its lines, asking 1000, are estimated as the online path reserves them.
    limited = batch_gateway.put_route(
        variants=[variant("a", upstreams["alpha"])], limits={"tpd": 500, "max_tokens": 50}
    )
    other = batch_gateway.put_route(variants=[variant("b", upstreams["beta"])])
    _, key = batch_gateway.create_key()
    client = sdk(batch_gateway, key)
    with pytest.raises(openai.BadRequestError) as refused:
        submit(client, [chat_line(f"r{i}", limited, max_tokens=1000) for i in range(9)])
    error = refused.value.body
    assert error["code"] == "batch_over_route_limit" and error["param"] == "input_file_id"
    need = 9 * (PROMPT + 50)
    assert f"route {limited!r} need about {need} tokens" in error["message"]
    assert f"daily limit of 500 tokens per key by {need - 500}" in error["message"]
    # The limit is per route: 8 lines on it fit (472 tokens) beside 8 on another route. A line naming no route is
    # not a submission error (it fails as that line when it runs) and counts nothing.
    fits = [chat_line(f"l{i}", limited, max_tokens=1000) for i in range(8)]
    fits += [chat_line(f"o{i}", other, max_tokens=50) for i in range(8)]
    fits.append(chat_line("nowhere", "no-such-route", max_tokens=100_000))
    accepted = submit(client, fits)
    assert accepted.status == "validating" and accepted.request_counts.total == 17
    client.batches.cancel(accepted.id)  # not for the workers of later tests to run


def test_a_batch_over_a_key_or_team_budget_is_refused_at_submission(batch_gateway, upstreams):
    # Priced at the route's dearest variant, as the online quota stage reserves: 500 output tokens at 100 per
    # million are 0.05 USD, though the other variant is free.
    cheap, dear = unique("cheap"), unique("dear")
    set_price(batch_gateway, dear, input="0", output="100")
    route = batch_gateway.put_route(variants=[variant(cheap, upstreams["alpha"]), variant(dear, upstreams["beta"])])
    lines = [chat_line(f"b{i}", route, max_tokens=50) for i in range(10)]
    _, key = batch_gateway.create_key(budget={"daily": "0.04", "monthly": "5"})
    with pytest.raises(openai.BadRequestError) as over_key:
        submit(sdk(batch_gateway, key), lines)
    error = over_key.value.body
    assert error["code"] == "batch_over_budget" and error["param"] == "input_file_id"
    assert "may cost up to 0.05 USD" in error["message"]
    assert "this key's daily budget of 0.04 USD by 0.01 USD" in error["message"]
    team = create_team(batch_gateway, budget={"monthly": "0.045"})
    _, member = batch_gateway.create_key(team=team)
    with pytest.raises(openai.BadRequestError) as over_team:
        submit(sdk(batch_gateway, member), lines)
    assert over_team.value.body["code"] == "batch_over_budget"
    assert f"team {team!r}'s monthly budget of 0.045 USD by 0.005 USD" in over_team.value.body["message"]
    _, enough = batch_gateway.create_key(budget={"daily": "0.05"})  # the worst case fits exactly
    client = sdk(batch_gateway, enough)
    accepted = submit(client, lines)
    assert accepted.status == "validating"
    client.batches.cancel(accepted.id)  # not for the workers of later tests to run


def test_a_batch_within_every_limit_and_budget_is_accepted_and_runs(batch_gateway, make_worker, upstreams):
    priced = unique("priced")
    set_price(batch_gateway, priced, input="1", output="100")
    route = batch_gateway.put_route(variants=[variant(priced, upstreams["alpha"])], limits={"tpd": 600})
    team = create_team(batch_gateway, budget={"daily": "0.1", "monthly": "1"})
    _, key = batch_gateway.create_key(limits={"tpd": 600}, budget={"daily": "0.1", "monthly": "1"}, team=team)
    client = sdk(batch_gateway, key)
    lines = [chat_line(f"w{i}", route, max_tokens=50) for i in range(10)]  # 590 tokens, at most 0.050009 USD
    lines.append(chat_line("nowhere", "no-such-route", max_tokens=100_000))
    batch = submit(client, lines)
    assert batch.status == "validating"
    make_worker()
    batch = wait_for(client, batch.id, lambda b: b.status in FINISHED)
    assert batch.status == "completed" and (batch.request_counts.completed, batch.request_counts.failed) == (10, 1)
    (nowhere,) = read_jsonl(client.files.content(batch.error_file_id).content)
    assert nowhere["custom_id"] == "nowhere" and nowhere["error"]["code"] == "model_not_found"
