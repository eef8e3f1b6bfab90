"""Files and Batches end to end with the official OpenAI SDK: the real gateway (PostgreSQL, Redis), real batch
workers (Celery on Redis) and a fake OpenAI upstream (the model is not the subject here). A worker killed mid-shard
loses and duplicates no line, and one killed while it writes the output files neither; cancel stops within a shard.
Limits and budgets at submission: test_batch_budgets.py; the fixtures: conftest.py."""

import asyncio
import io
import os
import time
from pathlib import Path

import asyncpg
import httpx
import openai
import orjson
import pytest

from llmops_testkit.batch import FINISHED, chat_line, jsonl, logged, read_jsonl, sdk, submit, wait_for


def test_sdk_batch_runs_end_to_end(batch_gateway, batch_feedback, batch_retriever, make_worker, route, upstreams):
    make_worker()
    key_id, key = batch_gateway.create_key(allowed_collections=["granted"])
    client = sdk(batch_gateway, key)
    lines = [chat_line(f"req-{i}", route, f"question {i}") for i in range(23)]
    lines.insert(5, b'{"custom_id": "broken", "method": "POST", "url": ')  # malformed: line 6
    lines.append({"custom_id": "wrong-url", "method": "POST", "url": "/v1/embeddings", "body": {"model": route}})
    # The key's collection grant applies to each line as to an online request: refused before any retrieval.
    lines.append(chat_line("forbidden", route, "question", rag={"collection": "secret"}))
    searched = len(batch_retriever.queries)
    uploaded = client.files.create(file=("questions.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0 and uploaded.filename == "questions.jsonl"
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "e2e"}
    )
    assert batch.status == "validating" and batch.request_counts.total == 26 and batch.metadata == {"run": "e2e"}
    batch = wait_for(client, batch.id, lambda b: b.status in FINISHED)
    assert batch.status == "completed", batch
    assert (batch.request_counts.completed, batch.request_counts.failed) == (23, 3)
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    output = read_jsonl(client.files.content(batch.output_file_id).content)
    assert [o["custom_id"] for o in output] == [f"req-{i}" for i in range(23)]  # in input order, each once
    first = output[0]
    assert first["response"]["status_code"] == 200 and first["error"] is None
    # Usage: the upstream's tokens of every line, as the gateway counted them against the key.
    usages = [o["response"]["body"]["usage"] for o in output]
    assert batch.usage.input_tokens == sum(u["prompt_tokens"] for u in usages) > 0
    assert batch.usage.output_tokens == sum(u["completion_tokens"] for u in usages) > 0
    assert batch.usage.total_tokens == batch.usage.input_tokens + batch.usage.output_tokens
    assert first["response"]["body"]["choices"][0]["message"]["content"].startswith("alpha:a-model")
    # Behind interactive requests in the model server's queue (vLLM's priority scheduling).
    assert {sent.get("priority") for sent in upstreams["alpha"].stats.requests} == {10}
    errors = {e["custom_id"]: e for e in read_jsonl(client.files.content(batch.error_file_id).content)}
    assert set(errors) == {None, "wrong-url", "forbidden"}
    assert errors[None]["error"]["message"].startswith("line 6: not valid JSON")
    assert errors["wrong-url"]["error"]["code"] == "invalid_url"
    forbidden = errors["forbidden"]
    assert forbidden["error"]["code"] == "collection_not_allowed" and forbidden["response"]["status_code"] == 403
    assert len(batch_retriever.queries) == searched
    # Every executed line went through the serving path: a request-log record each, marked with the batch, that
    # can be rated and trained on like an online answer.
    records = logged(batch_feedback, {o["response"]["request_id"] for o in output})
    assert len(records) == 23
    assert all(r["batch_id"] == batch.id and r["route"] == route and r["status"] == 200 for r in records)
    assert all(r["answer"].startswith("alpha:a-model") and r["key_id"] == key_id for r in records)
    assert batch.id in {b.id for b in client.batches.list()}
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_a_key_sees_only_its_own_files_and_batches(batch_gateway, route):
    _, owner = batch_gateway.create_key()
    _, other = batch_gateway.create_key()
    mine = sdk(batch_gateway, owner)
    uploaded = mine.files.create(file=("a.jsonl", io.BytesIO(jsonl([chat_line("x", route)]))), purpose="batch")
    batch = mine.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    theirs = sdk(batch_gateway, other)
    for call in (
        lambda: theirs.files.retrieve(uploaded.id),
        lambda: theirs.files.content(uploaded.id),
        lambda: theirs.files.delete(uploaded.id),
        lambda: theirs.batches.retrieve(batch.id),
        lambda: theirs.batches.cancel(batch.id),
        lambda: theirs.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert uploaded.id not in {f.id for f in theirs.files.list()} and uploaded.id in {f.id for f in mine.files.list()}
    assert batch.id not in {b.id for b in theirs.batches.list()}
    assert mine.files.content(uploaded.id).content == jsonl([chat_line("x", route)])
    assert mine.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        mine.files.retrieve(uploaded.id)


def test_bad_files_and_batches_are_refused_with_openai_errors(batch_gateway, route):
    _, key = batch_gateway.create_key()
    client = sdk(batch_gateway, key)

    def upload(data: bytes, purpose: str = "batch"):
        return client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose=purpose)

    with pytest.raises(openai.BadRequestError) as repeated:
        upload(jsonl([chat_line("same", route), chat_line("other", route), chat_line("same", route)]))
    assert repeated.value.body["code"] == "duplicate_custom_id" and "lines 1 and 3" in repeated.value.body["message"]
    with pytest.raises(openai.APIStatusError) as too_big:
        upload(jsonl([chat_line(f"r{i}", route, "x" * 1000) for i in range(80)]))
    assert too_big.value.status_code == 413 and too_big.value.body["code"] == "file_too_large"
    with pytest.raises(openai.BadRequestError) as not_utf8:
        upload(b'{"custom_id": "\xff"}\n')
    assert not_utf8.value.body["code"] == "invalid_file"
    with pytest.raises(openai.BadRequestError) as empty:
        upload(b"\n\n")
    assert empty.value.body["code"] == "empty_file"
    with pytest.raises(openai.BadRequestError) as purpose:
        upload(jsonl([chat_line("a", route)]), purpose="fine-tune")
    assert purpose.value.body["code"] == "invalid_purpose"
    good = upload(jsonl([chat_line("a", route)]))
    with pytest.raises(openai.BadRequestError) as endpoint:
        client.batches.create(input_file_id=good.id, endpoint="/v1/images/generations", completion_window="24h")
    assert endpoint.value.body["code"] == "invalid_endpoint"
    with pytest.raises(openai.BadRequestError) as window:
        client.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions", completion_window="1h")
    assert window.value.body["code"] == "invalid_completion_window"
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")


def test_a_worker_killed_mid_shard_loses_and_duplicates_no_line(
    batch_gateway, batch_feedback, make_worker, route, upstreams
):
    upstreams["alpha"].behaviour.delay_s = 0.3  # slow enough to kill the worker with lines in flight
    _, key = batch_gateway.create_key()
    client = sdk(batch_gateway, key)
    count = 20  # two shards: the first killed and resumed, the second run whole
    uploaded = client.files.create(
        file=("k.jsonl", io.BytesIO(jsonl([chat_line(f"k{i}", route) for i in range(count)]))), purpose="batch"
    )
    first = make_worker()
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(client, batch.id, lambda b: b.request_counts.completed >= 3)  # well inside the first 10-line shard
    pool = first.kill()
    assert pool, "the worker had a pool process"
    killed_at = client.batches.retrieve(batch.id)
    assert killed_at.status == "in_progress" and killed_at.request_counts.completed < count
    second = make_worker()  # another worker: its dispatcher sends the lapsed shard again, and the rest
    batch = wait_for(client, batch.id, lambda b: b.status in FINISHED, timeout_s=180)
    assert batch.status == "completed" and batch.request_counts.completed == count and batch.request_counts.failed == 0
    output = read_jsonl(client.files.content(batch.output_file_id).content)
    assert [o["custom_id"] for o in output] == [f"k{i}" for i in range(count)]
    # The killed worker's shard was resumed by the other, from its checkpoint: only the lines not recorded ran.
    claims = [orjson.loads(line) for line in second.log_path.read_bytes().splitlines() if b"shard claimed" in line]
    resumed = [c for c in claims if c["batch"] == batch.id and c["shard"] == 0]
    assert resumed and 0 < resumed[0]["lines"] < 10, claims
    assert len({o["id"] for o in output}) == count
    # A line in flight at the kill may have run twice upstream, but it is one request to the request log: the same
    # request id, stored once.
    records = logged(batch_feedback, {o["response"]["request_id"] for o in output})
    assert len(records) == count and all(r["batch_id"] == batch.id for r in records)


def test_cancel_stops_within_a_shard(batch_gateway, make_worker, route, upstreams):
    upstreams["alpha"].behaviour.delay_s = 0.5
    make_worker()
    _, key = batch_gateway.create_key()
    client = sdk(batch_gateway, key)
    count = 30
    uploaded = client.files.create(
        file=("c.jsonl", io.BytesIO(jsonl([chat_line(f"c{i}", route) for i in range(count)]))), purpose="batch"
    )
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(client, batch.id, lambda b: b.request_counts.completed >= 2)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    batch = wait_for(client, batch.id, lambda b: b.status in FINISHED)
    assert batch.status == "cancelled" and batch.cancelled_at
    done = batch.request_counts.completed
    assert 2 <= done < 10, "the first shard (10 lines) stopped after the lines it had in flight"
    output = read_jsonl(client.files.content(batch.output_file_id).content)
    assert len(output) == done and len({o["custom_id"] for o in output}) == done
    time.sleep(1.0)  # nothing runs after a batch is cancelled
    assert client.batches.retrieve(batch.id).request_counts.completed == done


def test_a_batch_past_its_window_expires_with_the_rest_as_errors(
    batch_gateway, make_worker, route, upstreams, postgres_database_url
):
    upstreams["alpha"].behaviour.delay_s = 0.5
    make_worker()
    _, key = batch_gateway.create_key()
    client = sdk(batch_gateway, key)
    count = 30
    uploaded = client.files.create(
        file=("e.jsonl", io.BytesIO(jsonl([chat_line(f"e{i}", route) for i in range(count)]))), purpose="batch"
    )
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(client, batch.id, lambda b: b.request_counts.completed >= 2)

    async def move_the_deadline() -> None:  # 24 hours are not waited for: the window is moved into the past
        conn = await asyncpg.connect(postgres_database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute("UPDATE batches SET expires_at = now() - interval '1 second' WHERE id = $1", batch.id)
        finally:
            await conn.close()

    asyncio.run(move_the_deadline())
    batch = wait_for(client, batch.id, lambda b: b.status in FINISHED)
    assert batch.status == "expired" and batch.expired_at
    done = batch.request_counts.completed
    assert 2 <= done < count
    output = read_jsonl(client.files.content(batch.output_file_id).content)
    errors = read_jsonl(client.files.content(batch.error_file_id).content)
    assert len(output) == done and len(errors) == count - done
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
    assert sorted(o["custom_id"] for o in output + errors) == sorted(f"e{i}" for i in range(count))


def test_a_worker_killed_while_finalizing_loses_and_duplicates_no_line(batch_gateway, make_worker, route):
    """The worker that takes the batch's finalisation is killed while it writes the output file; the batch stays
    ``finalizing`` until that is stale, then another worker writes the files again, every line once."""
    _, key = batch_gateway.create_key()
    client = sdk(batch_gateway, key)
    count = 12
    lines = [chat_line(f"f{i}", route) for i in range(count)] + [b'{"custom_id": "broken"']
    batch = submit(client, lines)  # no worker runs yet: it waits, validating
    # A store whose write never returns (a hung mount): the output file's place is a FIFO nobody reads, so the
    # worker that finalises blocks in the middle of writing it, every line already run.
    files_dir = Path(batch_gateway.env["GATEWAY_FILES_URL"])
    stuck = files_dir / f"file-{batch.id.removeprefix('batch_')}-output.partial"
    os.mkfifo(stuck)
    first = make_worker()
    killed_at = wait_for(client, batch.id, lambda b: b.status not in ("validating", "in_progress"))
    assert killed_at.status == "finalizing" and killed_at.finalizing_at, killed_at
    assert killed_at.output_file_id is None and killed_at.error_file_id is None
    assert (killed_at.request_counts.completed, killed_at.request_counts.failed) == (count, 1)
    assert first.kill(), "the worker had a pool process"
    stuck.unlink()  # the store works again
    # Another worker, which counts a finalisation 1 s old as abandoned (the default is 60 s).
    second = make_worker(GATEWAY_BATCH_FINALIZE_STALE_S="1")
    batch = wait_for(client, batch.id, lambda b: b.status in FINISHED)
    assert batch.status == "completed" and batch.completed_at
    assert batch.finalizing_at > killed_at.finalizing_at  # finalised anew, not by the killed worker
    output = read_jsonl(client.files.content(batch.output_file_id).content)
    assert [o["custom_id"] for o in output] == [f"f{i}" for i in range(count)]  # each once, in input order
    assert len({o["id"] for o in output}) == count
    (broken,) = read_jsonl(client.files.content(batch.error_file_id).content)
    assert broken["error"]["message"].startswith(f"line {count + 1}: not valid JSON")

    def finalized(worker) -> list[dict]:
        records = [
            orjson.loads(line) for line in worker.log_path.read_bytes().splitlines() if b"batch finalized" in line
        ]
        return [r for r in records if r["batch"] == batch.id]

    assert not finalized(first) and len(finalized(second)) == 1  # taken over by the other worker, once


def test_only_the_batch_workers_may_admit_and_settle_engine_lines(batch_gateway, route):
    """The internal endpoints of a worker's engine act for any key: the workers' token only, checked first."""
    key_id, key = batch_gateway.create_key()
    line = {"index": 0, "body": {"model": route, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}}
    admit = {"key_id": key_id, "models": ["an-engine-model"], "lines": [line]}
    with httpx.Client(base_url=batch_gateway.url) as http:
        for headers in ({}, {"authorization": f"Bearer {key}"}, {"authorization": "Bearer wrong"}):
            for step, body in (("admit", admit), ("settle", {"lines": [{"not": "a line"}]})):
                response = http.post(f"/internal/batches/batch_x/{step}", json=body, headers=headers)
                assert response.status_code == 401, response.text
                assert response.json()["error"]["code"] == "invalid_batch_token"
        workers = {"authorization": f"Bearer {batch_gateway.env['GATEWAY_BATCH_TOKEN']}"}
        # The route's variant is not the engine's model: the line goes back to the serving path (its reservation
        # given back), and nothing is accounted for it here.
        answer = http.post("/internal/batches/batch_x/admit", json=admit, headers=workers)
        assert answer.status_code == 200 and answer.json() == {"admitted": [], "serve": [0], "refused": []}
        unknown = {**admit, "lines": [{"index": 1, "body": {**line["body"], "model": "no-such-route"}}]}
        (refused,) = http.post("/internal/batches/batch_x/admit", json=unknown, headers=workers).json()["refused"]
        assert refused["status"] == 404 and refused["error"]["code"] == "model_not_found"
        bad = http.post("/internal/batches/batch_x/settle", json={"lines": [{"not": "a line"}]}, headers=workers)
        assert bad.status_code == 422
