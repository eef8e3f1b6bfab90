"""The gateway's upstream HTTP client, measured: its own (proxy.client) against aiohttp and httpx, side by side.

    .venv/bin/python bench/http_client_bench.py [--requests 6000] [--concurrency 1 16 64]

The clients call the test kit's fake OpenAI upstream (its own process, answers at once) from this process with
pooled keep-alive connections, ``concurrency`` requests in flight, in interleaved rounds. Reported per client and
level: requests/s, p50/p99 latency and this process's CPU time per request (what the client library costs the
gateway). Results: bench/results/http_client_bench.json and .png.
"""

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import percentile_ms

from llmops_cli.procs import free_port, spawn, stop_processes
from llmops_common.http import make_http_session
from llmops_gateway.proxy.client import UpstreamClient
from llmops_testkit.processes import wait_ready

RESULTS = Path(__file__).parent / "results"
BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "Say something short."}], "max_tokens": 16})
HEADERS = {"content-type": "application/json"}


async def closed_loop(call, *, concurrency: int, requests: int) -> dict:
    latencies: list[float] = []
    remaining = [requests]

    async def client() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"latencies": latencies, "wall_s": wall, "cpu_s": cpu}


async def run(url: str, *, levels: list[int], requests: int, rounds: int = 2) -> list[dict]:
    aio = make_http_session(max_connections=1000)
    # httpx with a pool as large as the concurrency, so it is not starved by its own limits.
    hx = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000), timeout=30)
    lean = UpstreamClient(connect_timeout_s=5, read_timeout_s=30, max_in_flight=1000)
    base_url, path = url.rsplit("/chat/completions", 1)[0], "/chat/completions"
    lean_headers = [(b"content-type", b"application/json")]

    async def via_gateway_client() -> None:
        response = await lean.post(base_url, path, BODY, lean_headers)
        await response.read()
        response.release()
        assert response.status == 200

    async def via_aiohttp() -> None:
        async with aio.post(url, data=BODY, headers=HEADERS) as response:
            await response.read()
            assert response.status == 200

    async def via_httpx() -> None:
        response = await hx.post(url, content=BODY, headers=HEADERS)
        assert response.status_code == 200

    clients = {"gateway": via_gateway_client, "aiohttp": via_aiohttp, "httpx": via_httpx}
    rows = []
    try:
        for call in clients.values():  # warm both pools
            await closed_loop(call, concurrency=max(levels), requests=max(levels) * 4)
        for level in levels:
            measured: dict[str, list[dict]] = {name: [] for name in clients}
            for _ in range(rounds):
                for name, call in clients.items():
                    measured[name].append(await closed_loop(call, concurrency=level, requests=requests // rounds))
            for name, runs in measured.items():
                latencies = [x for r in runs for x in r["latencies"]]
                wall, cpu = sum(r["wall_s"] for r in runs), sum(r["cpu_s"] for r in runs)
                rows.append(
                    {
                        "client": name,
                        "concurrency": level,
                        "throughput_rps": round(len(latencies) / wall, 1),
                        "p50_ms": percentile_ms(latencies, 50),
                        "p99_ms": percentile_ms(latencies, 99),
                        "cpu_us_per_request": round(cpu / len(latencies) * 1e6, 1),
                    }
                )
            print("  " + ", ".join(f"{r['client']} c{level}: {r['throughput_rps']} rps" for r in rows[-len(clients) :]))
    finally:
        await aio.close()
        await hx.aclose()
        await lean.aclose()
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (tput, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    for client in dict.fromkeys(r["client"] for r in rows):
        series = sorted((r for r in rows if r["client"] == client), key=lambda r: r["concurrency"])
        levels = [r["concurrency"] for r in series]
        tput.plot(levels, [r["throughput_rps"] for r in series], marker="o", label=client)
        cpu.plot(levels, [r["cpu_us_per_request"] for r in series], marker="o", label=client)
    for axis, title, unit in ((tput, "Throughput", "requests/s"), (cpu, "Client CPU per request", "µs")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("requests in flight")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.legend()
    fig.suptitle(f"Upstream HTTP client to a fake OpenAI server on loopback, {os.cpu_count()} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="requests per client and level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="http-client-bench-") as tmp:
        argv = [sys.executable, "-m", "llmops_testkit.fake_upstream", "--port", str(port)]
        upstream = spawn(argv, log_path=Path(tmp) / "upstream.log", die_with_parent=True)
        try:
            wait_ready(f"http://127.0.0.1:{port}/v1/models", timeout_s=30)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            rows = uvloop.run(run(url, levels=args.concurrency, requests=args.requests))
        finally:
            stop_processes([upstream])
    report = {
        "benchmark": "upstream http client",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {"requests": args.requests},
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "http_client_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.out / "http_client_bench.png")
    print(f"wrote {args.out / 'http_client_bench.json'} and .png")


if __name__ == "__main__":
    main()
