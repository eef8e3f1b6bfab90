"""Slow clients (slowloris) against the gateway: what trickling connections hold, with and without the head deadline.

    .venv/bin/python bench/slowloris_bench.py [--connections 2000] [--seconds 20] [--deadline 5]

A real gateway process (``python -m llmops_gateway``, SQLite, real Redis) in front of a fake upstream; this
process opens ``--connections`` connections that each send a request line and then one header byte a second for
``--seconds``, while it sends normal requests one after another. Run twice: GATEWAY_HEADER_TIMEOUT_S=0 (uvicorn
alone: no deadline on a request's head) and ``--deadline``. Reported per run: trickling connections the gateway
still held at the end and how long it held them, its open file descriptors and memory at the peak, normal
requests' latency before and during. Results: bench/results/slowloris_bench.json and .png.
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

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import percentile_ms

from llmops_cli.infra import find_or_start_redis
from llmops_testkit.fake_upstream import FakeUpstream
from llmops_testkit.gateway import Gateway, chat_body, gateway_env, new_secrets, variant

RESULTS = Path(__file__).parent / "results"
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"


async def trickle(host: str, port: int, seconds: float, held: list[float], opened: asyncio.Event) -> None:
    """One slow client: the request line, then a header byte a second. Appends how long the server kept it."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        held.append(0.0)  # refused: the server is out of descriptors or backlog
        return
    started = time.monotonic()
    writer.write(HEAD)
    await opened.wait()
    try:
        while time.monotonic() - started < seconds:
            writer.write(b"a")
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(1), 1.0)  # the server's 408, or its close
                break
            except TimeoutError:
                continue
    except OSError:
        pass
    held.append(time.monotonic() - started)
    writer.close()


def process_figures(pid: int) -> tuple[int, float]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return fds, round(rss_kb / 1024, 1)


async def normal_requests(url: str, key: str, route: str, stop: asyncio.Event) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            response = await client.post("/v1/chat/completions", json=chat_body(route))
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                latencies.append(float("inf"))
            await asyncio.sleep(0.02)
    return latencies


async def run_once(gateway: Gateway, key: str, route: str, connections: int, seconds: float) -> dict:
    host, port = gateway.url.removeprefix("http://").split(":")
    pid = gateway.replicas[0].process.pid
    stop = asyncio.Event()
    baseline_task = asyncio.create_task(normal_requests(gateway.url, key, route, stop))
    await asyncio.sleep(2)
    stop.set()
    baseline = await baseline_task
    fds_before, rss_before = process_figures(pid)

    held: list[float] = []
    opened, stop = asyncio.Event(), asyncio.Event()
    slow = [asyncio.create_task(trickle(host, int(port), seconds, held, opened)) for _ in range(connections)]
    await asyncio.sleep(1)  # let them connect
    opened.set()
    during_task = asyncio.create_task(normal_requests(gateway.url, key, route, stop))
    peak_fds, peak_rss, timeline = fds_before, rss_before, []
    began = time.monotonic()
    while time.monotonic() - began < seconds - 1:
        await asyncio.sleep(0.5)
        fds, rss = process_figures(pid)
        timeline.append((round(time.monotonic() - began + 1, 2), fds - fds_before))
        peak_fds, peak_rss = max(peak_fds, fds), max(peak_rss, rss)
    # The gateway's own view just before the slow clients give up: descriptors it still holds for them.
    open_at_end = process_figures(pid)[0] - fds_before
    stop.set()
    during = await during_task
    await asyncio.gather(*slow)
    return {
        "trickling_connections": connections,
        "held_at_end": open_at_end,  # descriptors above the baseline, a second before the clients stop
        "held_s_p50": round(sorted(held)[len(held) // 2], 2),
        "held_s_max": round(max(held), 2),
        "gateway_fds_before": fds_before,
        "gateway_fds_peak": peak_fds,
        "gateway_rss_mb_before": rss_before,
        "gateway_rss_mb_peak": peak_rss,
        "normal_p50_ms_before": percentile_ms(baseline, 50),
        "normal_p99_ms_before": percentile_ms(baseline, 99),
        "normal_p50_ms_during": percentile_ms(during, 50),
        "normal_p99_ms_during": percentile_ms(during, 99),
        "normal_failed_during": sum(1 for value in during if value == float("inf")),
        "normal_requests_during": len(during),
        "gateway_extra_fds_over_time": timeline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--deadline", type=float, default=5.0, help="GATEWAY_HEADER_TIMEOUT_S of the second run")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="slowloris-") as tmp:
        tmp = Path(tmp)
        redis = find_or_start_redis(tmp / "infra", die_with_parent=True)
        upstream = FakeUpstream("bench").start()
        try:
            for timeout in (0.0, args.deadline):
                state = tmp / f"gw-{timeout:g}"
                admin, secret = new_secrets()
                env = gateway_env(
                    sql_url=f"sqlite+aiosqlite:///{state / 'gw.db'}",
                    redis_url=redis.url,
                    state_dir=state,
                    admin_token=admin,
                    key_secret=secret,
                )
                env.update(GATEWAY_HEADER_TIMEOUT_S=str(timeout), GATEWAY_LOG_LEVEL="WARNING")
                state.mkdir(parents=True)
                gateway = Gateway(env=env, state_dir=state).start()
                try:
                    route = gateway.put_route(variants=[variant("a", upstream)])
                    _, key = gateway.create_key()
                    row = asyncio.run(run_once(gateway, key, route, args.connections, args.seconds))
                finally:
                    gateway.stop()
                row["header_timeout_s"] = timeout
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            upstream.stop()
            redis.stop()
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": "slowloris",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": args.seconds,
        "rows": rows,
    }
    (RESULTS / "slowloris_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows)


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["no deadline" if r["header_timeout_s"] == 0 else f"deadline {r['header_timeout_s']:g} s" for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    axes[0].bar(labels, [r["held_at_end"] for r in rows], color=["#c44", "#4a4"])
    axes[0].set_title(
        f"trickling connections still held\nafter {rows[0]['held_s_max']:.0f} s (of {rows[0]['trickling_connections']})"
    )
    axes[1].bar(labels, [r["gateway_fds_peak"] for r in rows], color=["#c44", "#4a4"])
    axes[1].set_title("gateway open file descriptors (peak)")
    x = range(len(rows))
    axes[2].bar([i - 0.2 for i in x], [r["normal_p50_ms_before"] for r in rows], width=0.4, label="before")
    axes[2].bar([i + 0.2 for i in x], [r["normal_p50_ms_during"] for r in rows], width=0.4, label="during")
    axes[2].set_xticks(list(x), labels)
    axes[2].set_title("normal request p50 (ms)")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "slowloris_bench.png", dpi=110)


if __name__ == "__main__":
    main()
