"""Embeddings through the gateway against the retriever's embedder called directly, same run.

    .venv/bin/python bench/embeddings_bench.py [--requests 120] [--concurrency 4] [--batches 1 16] [--rounds 3]

Starts a real retriever (all-MiniLM-L6-v2 on the CPU, Qdrant Edge) and a real gateway (SQLite, Redis found or
started), makes a key with limits (so the quota path runs), and sends the same ``POST /v1/embeddings`` requests
(``--batches``: texts per request, ~20 words each; float encoding) to the retriever with its read token and
through the gateway with the key, alternating round by round so a noisy machine hurts both alike. Reported per
batch size: embeddings/s and request latency p50/p95 for each path, and the gateway's share of the direct rate.
Results: bench/results/embeddings_bench.json and .png. The embedder is CPU-bound: the figures measure what the
gateway adds in front of it, not a fast embedder.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from llmops_cli.infra import find_or_start_redis
from llmops_testkit.gateway import Gateway, gateway_env, new_secrets
from llmops_testkit.retriever import Retriever, new_tokens, retriever_env

RESULTS = Path(__file__).parent / "results"
MODEL = "all-MiniLM-L6-v2"
WORDS = [
    "the",
    "harbour",
    "master",
    "recorded",
    "forty",
    "crates",
    "of",
    "cod",
    "at",
    "the",
    "south",
    "pier",
    "before",
    "dawn",
    "while",
    "fog",
    "rolled",
    "in",
]


def texts(n: int, rng: random.Random) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(20)) for _ in range(n)]


async def run(url: str, token: str, *, requests: int, concurrency: int, batch: int, seed: int) -> dict:
    rng = random.Random(seed)
    bodies = [{"model": MODEL, "input": texts(batch, rng), "encoding_format": "float"} for _ in range(requests)]
    latencies: list[float] = []
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=120) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                response = await client.post("/v1/embeddings", json=body)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
                assert len(response.json()["data"]) == batch

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "embeddings_per_s": requests * batch / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r['batch']} text{'s' if r['batch'] > 1 else ''}/request" for r in results]
    x = range(len(results))
    direct = [r["direct"]["embeddings_per_s"] for r in results]
    gateway = [r["gateway"]["embeddings_per_s"] for r in results]
    ax.bar([i - 0.2 for i in x], direct, width=0.4, label="retriever directly")
    ax.bar([i + 0.2 for i in x], gateway, width=0.4, label="through the gateway")
    for i, r in enumerate(results):
        ax.annotate(f"{r['gateway_share']:.2f}x", (i + 0.2, gateway[i]), ha="center", va="bottom")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("embeddings / s")
    ax.set_title("all-MiniLM-L6-v2 on CPU: /v1/embeddings")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="embeddings-bench-"))
    redis = find_or_start_redis(state / "infra", die_with_parent=True)
    admin, read = new_tokens()
    retriever = Retriever(
        env=retriever_env(store="edge", state_dir=state / "retriever", admin_token=admin, read_token=read),
        state_dir=state / "retriever",
    )
    admin_token, key_secret = new_secrets()
    env = gateway_env(
        sql_url=f"sqlite+aiosqlite:///{state / 'gateway.db'}",
        redis_url=redis.url,
        state_dir=state / "gateway",
        admin_token=admin_token,
        key_secret=key_secret,
    )
    env["GATEWAY_UPSTREAM_READ_TIMEOUT_S"] = "60"
    gateway = Gateway(env={**env, **retriever.gateway_env()}, state_dir=state / "gateway")
    try:
        retriever.start()
        gateway.start()
        # Limits far above the load: the quota path (reserve, reconcile) runs on every request without refusing.
        _, key = gateway.create_key(name=f"bench-{uuid.uuid4().hex[:6]}", limits={"rpm": 10**6, "tpm": 10**9})
        results = []
        for batch in args.batches:
            requests = max(8, args.requests // batch * 2) if batch > 1 else args.requests
            rows = {"direct": [], "gateway": []}
            asyncio.run(run(retriever.url, read, requests=8, concurrency=args.concurrency, batch=batch, seed=0))
            for round_ in range(args.rounds):
                for mode, url, token in (("direct", retriever.url, read), ("gateway", gateway.url, key)):
                    rows[mode].append(
                        asyncio.run(
                            run(url, token, requests=requests, concurrency=args.concurrency, batch=batch, seed=round_)
                        )
                    )
            row = {"batch": batch, "requests": requests}
            for mode, runs in rows.items():
                row[mode] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            row["gateway_share"] = row["gateway"]["embeddings_per_s"] / row["direct"]["embeddings_per_s"]
            results.append(row)
            print(json.dumps(row))
    finally:
        gateway.stop()
        retriever.stop()
        redis.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "embeddings",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": MODEL,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "results": results,
    }
    (args.out / "embeddings_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, args.out / "embeddings_bench.png")


if __name__ == "__main__":
    main()
