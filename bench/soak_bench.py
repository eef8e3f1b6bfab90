"""Soak: mixed traffic through a gateway with a feedback service for a long while; does anything leak or degrade?

A fake OpenAI upstream, the feedback service (SQLite) and a gateway that delivers its request log there. A closed
loop of ``--concurrency`` clients sends plain chat completions, streamed ones and thumbs ratings of earlier answers
(``--mix``), for ``--duration-s`` (10 minutes by default). Every ``--sample-s`` the resident memory (RSS) of each
service process is read from /proc. Reported: errors by kind and status, latency percentiles per time bucket, and
the memory trend over the last half of the run (least-squares slope, MB/min: the first half is warm-up, caches
filling). Results: bench/results/soak_bench.json and soak_bench.png.

    .venv/bin/python bench/soak_bench.py --duration-s 120
"""

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from llmops_cli.infra import find_or_start_redis
from llmops_cli.procs import free_port, spawn, stop_processes
from llmops_testkit.feedback import Feedback, feedback_env, new_tokens
from llmops_testkit.gateway import Gateway, gateway_env, new_secrets
from llmops_testkit.processes import wait_ready

RESULTS = Path(__file__).parent / "results"
BUCKET_S = 15.0  # latency percentiles per this much time


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), in MB; 0 once it is gone."""
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    for each in [pid, *map(int, children)]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return float("nan")
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return round(cov / var * 60, 3) if var else float("nan")


def percentile_ms(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000, 2) if ordered else None


class Platform:
    def __init__(self, tmp: Path) -> None:
        self.redis = find_or_start_redis(tmp, die_with_parent=True)
        self.upstream_port = free_port()
        self.upstream = spawn(
            [sys.executable, "-m", "llmops_testkit.fake_upstream", "--port", str(self.upstream_port), "--chunks", "8"],
            log_path=tmp / "upstream.log",
            env=dict(os.environ),
            die_with_parent=True,
        )
        admin_token, ingest_token = new_tokens()
        self.feedback = Feedback(
            env={
                **feedback_env(
                    sql_url=f"sqlite+aiosqlite:///{tmp / 'feedback.db'}",
                    admin_token=admin_token,
                    ingest_token=ingest_token,
                ),
                "FEEDBACK_LOG_LEVEL": "WARNING",
                "FEEDBACK_QUALITY_REFRESH_S": "5",
            },
            state_dir=tmp / "feedback",
        ).start()
        gw_admin, key_secret = new_secrets()
        env = gateway_env(
            sql_url=f"sqlite+aiosqlite:///{tmp / 'gateway.db'}",
            redis_url=self.redis.url,
            state_dir=tmp / "gateway",
            admin_token=gw_admin,
            key_secret=key_secret,
        )
        env.update(
            GATEWAY_REQUEST_LOG_SINK="feedback",
            GATEWAY_FEEDBACK_URL=self.feedback.url,
            GATEWAY_FEEDBACK_TOKEN=ingest_token,
            GATEWAY_SPOOL_DIR=str(tmp / "gateway" / "spool"),
            GATEWAY_LOG_LEVEL="WARNING",
            GATEWAY_UPSTREAM_READ_TIMEOUT_S="30",
        )
        self.gateway = Gateway(env=env, state_dir=tmp / "gateway").start()
        wait_ready(f"http://127.0.0.1:{self.upstream_port}/v1/models", timeout_s=30)
        self.gateway.put_route(
            "soak", variants=[{"name": "a", "upstream": f"http://127.0.0.1:{self.upstream_port}/v1", "model": "m"}]
        )
        self.key = self.gateway.create_key(name="soak")[1]
        time.sleep(1.2)  # route and key caches see the new rows

    def pids(self) -> dict[str, int]:
        return {
            "gateway": self.gateway.replicas[0].process.pid,
            "feedback": self.feedback.process.process.pid,
            "upstream": self.upstream.pid,
        }

    def stop(self) -> None:
        self.gateway.stop()
        self.feedback.stop()
        stop_processes([self.upstream])
        self.redis.stop()


class Soak:
    def __init__(self, platform: Platform, *, mix: dict[str, float], started: float) -> None:
        self.platform, self.mix, self.started = platform, mix, started
        self.results: list[tuple[float, str, int, float]] = []  # (seconds since start, kind, status, latency)
        self.answered: list[str] = []  # request ids to rate
        self.rng = random.Random(7)

    async def one(self, client: httpx.AsyncClient) -> None:
        kind = self.rng.choices(list(self.mix), weights=list(self.mix.values()))[0]
        if kind == "rating" and not self.answered:
            kind = "plain"
        begun = time.perf_counter()
        status = 0
        try:
            if kind == "rating":
                request_id = self.answered.pop(self.rng.randrange(len(self.answered)))
                body = {"request_id": request_id, "rating": self.rng.choice(["up", "down"])}
                status = (await client.post("/v1/feedback", json=body)).status_code
            else:
                body = {
                    "model": "soak",
                    "messages": [{"role": "user", "content": f"soak {uuid.uuid4().hex}"}],
                    "stream": kind == "streamed",
                    "max_tokens": 16,
                }
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    async for _ in response.aiter_raw():
                        pass
                    status = response.status_code
                    if status == 200 and len(self.answered) < 10_000:
                        self.answered.append(response.headers["x-request-id"])
        except httpx.HTTPError:
            status = -1  # no answer at all
        self.results.append((time.perf_counter() - self.started, kind, status, time.perf_counter() - begun))

    async def client_loop(self, until: float) -> None:
        headers = {"authorization": f"Bearer {self.platform.key}"}
        async with httpx.AsyncClient(base_url=self.platform.gateway.url, headers=headers, timeout=30) as client:
            while time.perf_counter() < until:
                await self.one(client)


async def sample_memory(pids: dict[str, int], started: float, until: float, every_s: float, out: dict) -> None:
    while True:
        now = time.perf_counter()
        for name, pid in pids.items():
            out.setdefault(name, []).append((round(now - started, 1), round(rss_mb(pid), 2)))
        if now >= until:
            return
        await asyncio.sleep(min(every_s, max(0.0, until - now)))


def summarize(results, memory: dict, duration_s: float, args) -> dict:
    errors: dict[str, int] = {}
    for _, kind, status, _ in results:
        ok = status in (200, 201, 202)
        if not ok:
            errors[f"{kind} {status}"] = errors.get(f"{kind} {status}", 0) + 1
    buckets = []
    for start in range(0, int(duration_s - BUCKET_S) + 1, int(BUCKET_S)):  # whole buckets only: no stub at the end
        inside = [r for r in results if start <= r[0] < start + BUCKET_S]
        if not inside:
            continue
        row = {"from_s": start, "requests": len(inside)}
        for kind in ("plain", "streamed", "rating"):
            latencies = [r[3] for r in inside if r[1] == kind]
            row[kind] = {"p50_ms": percentile_ms(latencies, 50), "p99_ms": percentile_ms(latencies, 99)}
        buckets.append(row)
    half = duration_s / 2
    trend = {
        name: {
            "start_mb": samples[0][1],
            "end_mb": samples[-1][1],
            "slope_last_half_mb_per_min": slope_mb_per_min([s for s in samples if s[0] >= half]),
        }
        for name, samples in memory.items()
    }
    return {
        "duration_s": round(duration_s, 1),
        "bucket_s": BUCKET_S,
        "concurrency": args.concurrency,
        "mix": args.mix,
        "requests": len(results),
        "throughput_rps": round(len(results) / duration_s, 1),
        "errors": errors,
        "error_rate": round(sum(errors.values()) / max(1, len(results)), 5),
        "latency_buckets": buckets,
        "memory_trend": trend,
        "memory_samples": memory,
        "cpus": os.cpu_count(),
    }


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (mem, lat) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for name, samples in summary["memory_samples"].items():
        slope = summary["memory_trend"][name]["slope_last_half_mb_per_min"]
        mem.plot([t for t, _ in samples], [m for _, m in samples], label=f"{name} ({slope:+.2f} MB/min, last half)")
    mem.set_ylabel("RSS (MB)")
    mem.legend(fontsize=8)
    mem.set_title(f"Soak: {summary['requests']} requests, {summary['error_rate']:.2%} errors")
    for kind in ("plain", "streamed", "rating"):
        rows = [b for b in summary["latency_buckets"] if b[kind]["p99_ms"] is not None]
        xs = [b["from_s"] + BUCKET_S / 2 for b in rows]
        lat.plot(xs, [b[kind]["p50_ms"] for b in rows], label=f"{kind} p50")
        lat.plot(xs, [b[kind]["p99_ms"] for b in rows], linestyle="--", label=f"{kind} p99")
    lat.set_ylabel("latency (ms)")
    lat.set_xlabel("seconds")
    lat.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


async def run(platform: Platform, args) -> dict:
    started = time.perf_counter()
    until = started + args.duration_s
    soak = Soak(platform, mix=args.mix, started=started)
    memory: dict[str, list] = {}
    await asyncio.gather(
        sample_memory(platform.pids(), started, until, args.sample_s, memory),
        *(soak.client_loop(until) for _ in range(args.concurrency)),
    )
    return summarize(soak.results, memory, time.perf_counter() - started, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument(
        "--mix", type=json.loads, default={"plain": 0.6, "streamed": 0.3, "rating": 0.1}, help="JSON: kind -> weight"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        platform = Platform(Path(tmp))
        try:
            summary = asyncio.run(run(platform, args))
        finally:
            platform.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak_bench.json").write_text(json.dumps(summary, indent=1))
    plot(summary, RESULTS / "soak_bench.png")
    brief = {k: summary[k] for k in ("requests", "throughput_rps", "error_rate", "errors", "memory_trend")}
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    main()
