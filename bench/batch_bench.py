"""Batch output tokens/s against the same prompts sent online through the gateway at concurrency 32, same run.

    .venv/bin/python bench/batch_bench.py [--prompts 48] [--max-tokens 32] [--line-concurrency 4 16]

Starts its own stack in a temporary directory (Redis found or started, the inference service with its vLLM on the
bundled model, a gateway on SQLite, one batch worker with two shard slots) and runs the same chat prompts
(``ignore_eos``: exactly ``--max-tokens`` output tokens each, greedy): online through the gateway at concurrency
32, then as a batch (``/v1/files`` + ``/v1/batches``, timed from submission to ``completed``) through the serving
path for each ``--line-concurrency`` (requests of a shard in flight; the worker runs two shards at once), and last
as a batch on a worker running vLLM's offline engine (``GATEWAY_BATCH_ENGINE=vllm``, the same model and KV share;
warmed by a two-line batch first, so its start is not timed). Reported: output tokens/s of each. Writes
bench/results/batch_bench.json and .png.
"""

import argparse
import asyncio
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import httpx
import orjson

# The inference benchmark's prompts: the same work measured online there and in batches here.
from inference_bench import PROMPTS
from openai import OpenAI

from llmops_cli.infra import find_or_start_redis
from llmops_models.prepare import bundled_model_dir
from llmops_testkit.batch import BatchWorker, batch_env
from llmops_testkit.gateway import Gateway, gateway_env, new_secrets
from llmops_testkit.inference import InferenceService, inference_env, prepare_bundled_model


def body(i: int, max_tokens: int) -> dict:
    prompt = f"{PROMPTS[i % len(PROMPTS)]} (#{i})"
    return {
        "model": "base",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }


async def online(url: str, key: str, bodies: list[dict], concurrency: int) -> dict:
    queue, tokens = list(reversed(bodies)), 0
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=600) as client:

        async def worker() -> None:
            nonlocal tokens
            while queue:
                response = await client.post("/v1/chat/completions", json=queue.pop())
                response.raise_for_status()
                tokens += response.json()["usage"]["completion_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"output_tokens": tokens, "seconds": elapsed, "output_tokens_per_s": tokens / elapsed}


def batch(client: OpenAI, bodies: list[dict]) -> dict:
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": b} for i, b in enumerate(bodies)
    ]
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    uploaded = client.files.create(file=("bench.jsonl", io.BytesIO(data)), purpose="batch")
    started = time.perf_counter()
    job = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    while job.status not in ("completed", "failed", "cancelled", "expired"):
        time.sleep(0.25)
        job = client.batches.retrieve(job.id)
    elapsed = time.perf_counter() - started
    assert job.status == "completed" and job.request_counts.failed == 0, job
    output = [orjson.loads(line) for line in client.files.content(job.output_file_id).content.splitlines()]
    tokens = sum(o["response"]["body"]["usage"]["completion_tokens"] for o in output)
    return {"output_tokens": tokens, "seconds": elapsed, "output_tokens_per_s": tokens / elapsed}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    names = [r["name"] for r in rows]
    values = [r["output_tokens_per_s"] for r in rows]
    colors = ["tab:green" if r.get("engine") else "tab:orange" for r in rows[1:]]
    ax.bar(names, values, color=["tab:blue", *colors])
    for i, v in enumerate(values):
        ax.annotate(f"{v:.0f}", (i, v), ha="center", va="bottom")
    ax.set_ylabel("output tokens / s")
    ax.set_title("SmolLM2-135M on vLLM CPU: online (c=32) vs batches")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--line-concurrency", type=int, nargs="+", default=[4, 16])
    # vLLM's CPU KV cache as a share of RAM: it refuses to start when that much is not free (a shared machine).
    parser.add_argument("--kv-share", type=float, default=0.08)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)
    bodies = [body(i, args.max_tokens) for i in range(args.prompts)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="llmops-batch-bench-") as tmp:
        state = Path(tmp)
        prepare_bundled_model()
        redis = find_or_start_redis(state / "redis", die_with_parent=True)
        inference = InferenceService(
            env=inference_env(
                state_dir=state / "inference",
                admin_token=new_secrets()[0],
                INFERENCE_GPU_MEMORY_UTILIZATION=str(args.kv_share),
            ),
            state_dir=state / "inference",
        )
        admin_token, key_secret = new_secrets()
        env = gateway_env(
            sql_url=f"sqlite+aiosqlite:///{state / 'gateway.db'}",
            redis_url=redis.url,
            state_dir=state / "gateway",
            admin_token=admin_token,
            key_secret=key_secret,
        )
        env.update(batch_env("", GATEWAY_FILES_URL=str(state / "files"), GATEWAY_UPSTREAM_READ_TIMEOUT_S="600"))
        env["GATEWAY_BATCH_WORKER_CONCURRENCY"] = "2"
        env["GATEWAY_BATCH_SHARD_LINES"] = str(max(1, args.prompts // 2))  # two shards: both worker slots work
        gateway = Gateway(env=env, state_dir=state / "gateway")
        workers: list[BatchWorker] = []
        try:
            inference.start()
            print(f"inference ready in {inference.start_s:.0f}s", flush=True)
            gateway.start()
            gateway.put_route(
                "base",
                variants=[{"name": "inference", "upstream": f"{inference.url}/v1", "model": inference.base_model}],
            )
            key = gateway.create_key()[1]
            client = OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=600)
            asyncio.run(online(gateway.url, key, bodies[:4], 4))  # warm-up
            result = asyncio.run(online(gateway.url, key, bodies, 32))
            rows.append({"name": "online c=32", **result})
            print(json.dumps(rows[-1]), flush=True)
            for lines in args.line_concurrency:
                for worker in workers:
                    worker.stop()
                worker_env = {
                    **env,
                    "GATEWAY_BATCH_GATEWAY_URL": gateway.url,
                    "GATEWAY_BATCH_LINE_CONCURRENCY": str(lines),
                }
                workers = [BatchWorker(env=worker_env, state_dir=state / "workers", name=f"w{lines}").start()]
                result = batch(client, bodies)
                rows.append({"name": f"batch {2 * lines} in flight", "line_concurrency": lines, **result})
                print(json.dumps(rows[-1]), flush=True)
            for worker in workers:
                worker.stop()
            engine_env = {
                **env,
                "GATEWAY_BATCH_GATEWAY_URL": gateway.url,
                "GATEWAY_BATCH_SHARD_LINES": str(args.prompts),
                "GATEWAY_BATCH_ENGINE": "vllm",
                "GATEWAY_BATCH_ENGINE_MODEL": str(bundled_model_dir()),
                "GATEWAY_BATCH_ENGINE_SERVED_NAMES": json.dumps([inference.base_model]),
                "GATEWAY_BATCH_ENGINE_CHUNK_LINES": str(args.prompts),
                "GATEWAY_BATCH_ENGINE_ARGS": json.dumps(
                    {"enforce_eager": True, "gpu_memory_utilization": args.kv_share, "dtype": "bfloat16"}
                ),
            }
            workers = [BatchWorker(env=engine_env, state_dir=state / "workers", name="engine").start()]
            batch(client, bodies[:2])  # the engine starts with its first shard
            result = batch(client, bodies)
            rows.append({"name": "batch on vLLM offline", "engine": "vllm", **result})
            print(json.dumps(rows[-1]), flush=True)
        finally:
            for worker in workers:
                worker.stop()
            gateway.stop()
            inference.stop()
            redis.stop()
    for row in rows:  # the ratio against online traffic measured in the same run
        row["vs_online"] = round(row["output_tokens_per_s"] / rows[0]["output_tokens_per_s"], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "batch",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_at_start": load_at_start},
        "prompts": args.prompts,
        "max_tokens": args.max_tokens,
        "kv_share": args.kv_share,
        "results": rows,
    }
    (args.out / "batch_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.out / "batch_bench.png")


if __name__ == "__main__":
    main()
