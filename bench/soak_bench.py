"""Soak: mixed traffic through the whole platform for a long while; does anything leak, fail or degrade?

Every part is a real process (bench/soak_platform.py): the gateway delivering its request log to the feedback
service, the retriever (Qdrant Edge in-process, as `llmops up` runs it; MiniLM embeddings) with the demo's 48
documents ingested at start, MLflow, the trainer API and a Celery worker on the bundled model, Redis. The model
upstream is the fake OpenAI upstream (llmops_testkit.fake_upstream) so that the gateway's load is not capped by
CPU vLLM on a 2-core machine; ``--vllm`` puts the inference service (vLLM) there instead (lower ``--concurrency``).

A closed loop of ``--concurrency`` clients sends plain chat completions, streamed ones, RAG completions (a route
with ``rag`` settings: every request retrieves 2 sources; an answer without them counts as an error) and thumbs
ratings of earlier answers (``--mix``), for ``--duration-s`` (10 minutes by default). Meanwhile a small LoRA job is
submitted through the trainer API at ``--train-first-s`` and then every ``--train-every-s``, on the feedback
service's SFT export of the ratings given since the previous job (the platform's own loop), ``--train-steps``
steps; each job's outcome and timings are recorded (jobs still running at the end are awaited up to
``--job-timeout-s``, then cancelled). Every ``--sample-s`` each service's memory (RSS of its process tree, from
/proc) is sampled and a progress line printed. Reported: errors by kind and status, latency percentiles per 15 s,
training jobs, and each service's memory trend over the last half of the run (least-squares slope, MB/min: the
first half is warm-up, caches filling). Results: bench/results/soak_bench.json and soak_bench.png.

    .venv/bin/python bench/soak_bench.py --duration-s 120 --train-first-s 20 --train-every-s 60
"""

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from soak_platform import RAG_ROUTE, ROUTE, Platform
from soak_report import KINDS, OK, latency_row, plot, summarize
from soak_training import Training

RESULTS = Path(__file__).parent / "results"


class Traffic:
    """The closed loop of clients; each result is (seconds since start, kind, status, latency in seconds)."""

    def __init__(self, platform: Platform, *, mix: dict[str, float], started: float) -> None:
        self.platform, self.mix, self.started = platform, mix, started
        self.results: list[tuple[float, str, int | str, float]] = []
        self.answered: list[str] = []  # request ids to rate
        self.rng = random.Random(7)

    async def one(self, client: httpx.AsyncClient) -> None:
        kind = self.rng.choices(list(self.mix), weights=list(self.mix.values()))[0]
        if kind == "rating" and not self.answered:
            kind = "plain"
        begun = time.perf_counter()
        try:
            if kind == "rating":
                request_id = self.answered.pop(self.rng.randrange(len(self.answered)))
                body = {"request_id": request_id, "rating": self.rng.choice(["up", "down"])}
                status = (await client.post("/v1/feedback", json=body)).status_code
            elif kind == "rag":
                status = await self.rag(client)
            else:
                status = await self.chat(client, streamed=kind == "streamed")
        except httpx.HTTPError:
            status = -1  # no answer at all
        self.results.append((time.perf_counter() - self.started, kind, status, time.perf_counter() - begun))

    async def chat(self, client: httpx.AsyncClient, *, streamed: bool) -> int:
        body = {
            "model": ROUTE,
            "messages": [{"role": "user", "content": f"soak {uuid.uuid4().hex}"}],
            "stream": streamed,
            "max_tokens": 16,
        }
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async for _ in response.aiter_raw():
                pass
            self.remember(response)
            return response.status_code

    async def rag(self, client: httpx.AsyncClient) -> int | str:
        question = self.rng.choice(self.platform.rag_questions)
        body = {"model": RAG_ROUTE, "messages": [{"role": "user", "content": question}], "max_tokens": 16}
        response = await client.post("/v1/chat/completions", json=body)
        if response.status_code == 200 and not response.json().get("sources"):
            return "200 without sources"
        self.remember(response)
        return response.status_code

    def remember(self, response: httpx.Response) -> None:
        if response.status_code == 200 and len(self.answered) < 10_000:
            self.answered.append(response.headers["x-request-id"])

    async def client_loop(self, until: float) -> None:
        headers = {"authorization": f"Bearer {self.platform.key}"}
        async with httpx.AsyncClient(base_url=self.platform.gateway.url, headers=headers, timeout=60) as client:
            while time.perf_counter() < until:
                await self.one(client)


def progress_line(now_s: float, traffic: Traffic, seen: int, last_s: float, memory: dict, training: Training) -> str:
    """One line per sample: totals, the rate and p99 per kind since the last line (at ``last_s``), memory, jobs."""
    recent = traffic.results[seen:]
    errors = sum(1 for r in traffic.results if r[2] not in OK)
    p99 = latency_row(recent)
    latency = " ".join(f"{kind} {p99[kind]['p99_ms'] or '-'}" for kind in KINDS)
    mb = " ".join(f"{name} {value:.0f}" for name, value in memory.items())
    return (
        f"[{now_s:5.0f}s] {len(traffic.results)} requests ({len(recent) / max(now_s - last_s, 1e-3):.0f}/s now), {errors} errors | "
        f"p99 ms: {latency} | MB: {mb} | jobs: {training.describe()}"
    )


async def sample(platform: Platform, traffic: Traffic, training: Training, until: float, every_s: float) -> dict:
    """Memory of every service every ``every_s`` until ``until``, with a progress line each time."""
    memory: dict[str, list] = {}
    seen, last_s = 0, 0.0
    while True:
        now = time.perf_counter()
        now_s, current = now - traffic.started, platform.memory_mb()
        for name, value in current.items():
            memory.setdefault(name, []).append((round(now_s, 1), round(value, 2)))
        print(progress_line(now_s, traffic, seen, last_s, current, training), flush=True)
        seen, last_s = len(traffic.results), now_s
        if now >= until:
            return memory
        await asyncio.sleep(min(every_s, max(0.0, until - now)))


async def run(platform: Platform, args) -> dict:
    started = time.perf_counter()
    until = started + args.duration_s
    traffic = Traffic(platform, mix=args.mix, started=started)
    training = Training(
        platform.trainer, started=started, started_at=datetime.now(UTC), steps=args.train_steps,
        first_s=args.train_first_s, every_s=args.train_every_s, timeout_s=args.job_timeout_s,
    )  # fmt: skip
    memory, *_ = await asyncio.gather(
        sample(platform, traffic, training, until, args.sample_s),
        training.loop(until),
        *(traffic.client_loop(until) for _ in range(args.concurrency)),
    )
    duration_s = args.duration_s  # the traffic's; jobs may have been awaited past it
    settings = {
        "concurrency": args.concurrency,
        "mix": args.mix,
        "upstream": "inference service (vLLM)" if args.vllm else "fake OpenAI upstream",
        "training": {"first_s": args.train_first_s, "every_s": args.train_every_s, "max_steps": args.train_steps},
        "sample_s": args.sample_s,
        "cpus": os.cpu_count(),
        "load_at_start": args.load_at_start,
    }
    return summarize(traffic.results, memory, training.jobs, duration_s, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between memory samples (and progress)")
    parser.add_argument(
        "--mix",
        type=json.loads,
        default={"plain": 0.5, "streamed": 0.25, "rag": 0.15, "rating": 0.1},
        help=f"JSON: kind ({', '.join(KINDS)}) -> weight",
    )
    parser.add_argument("--train-first-s", type=float, default=30.0, help="when the first LoRA job is submitted")
    parser.add_argument("--train-every-s", type=float, default=150.0, help="then one every this many seconds")
    parser.add_argument("--train-steps", type=int, default=5, help="max_steps of each job")
    parser.add_argument("--job-timeout-s", type=float, default=300.0, help="wait for jobs after the traffic ends")
    parser.add_argument("--vllm", action="store_true", help="the inference service (vLLM CPU) as the upstream")
    args = parser.parse_args()
    if unknown := set(args.mix) - set(KINDS):
        parser.error(f"--mix: unknown kinds {sorted(unknown)}")
    args.load_at_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        began = time.monotonic()
        print("starting the platform (torch and the embedding model load first: a minute or two)...", flush=True)
        platform = Platform(Path(tmp), vllm=args.vllm)
        print(f"platform ready in {time.monotonic() - began:.0f}s; soaking for {args.duration_s:.0f}s", flush=True)
        try:
            summary = asyncio.run(run(platform, args))
        finally:
            platform.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak_bench.json").write_text(json.dumps(summary, indent=1))
    plot(summary, RESULTS / "soak_bench.png")
    brief = {
        k: summary[k]
        for k in ("requests", "throughput_rps", "error_rate", "errors", "training_outcomes", "memory_trend")
    }
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    main()
