"""Gateway benchmark: what the gateway adds to a request, measured side by side with calling the upstream directly.

    .venv/bin/python bench/gateway_bench.py [--requests 20000] [--concurrency 1 16 64] [--streams 100] [--workers 1 2]
        [--litellm-requests 1200] [--no-litellm]

Everything runs on this machine in one run: a fake OpenAI upstream in its own process (answers at once, every
response in one write with TCP_NODELAY), real gateway processes (SQLite keys, real Redis for quotas) and a lean
keep-alive load generator (bench/loadgen.py) in this process. Each figure is the gateway path minus the direct
path, measured in interleaved rounds so that machine noise hits both alike:
- sequential latency p50/p99: direct, via the gateway with a key without limits, and with a key with limits (the
  difference between the last two is the cost of the quota check: one Redis round trip);
- throughput and p99 at each concurrency, direct and via a gateway with each worker count, with the CPU each
  process spent per request (gateway, upstream, load generator: /proc accounting); the same with a key without
  limits (what the quota check costs under load); and, as references without any features, through
  bench/python_floor_proxy.py (the least any Python proxy costs here) and nginx and HAProxy where installed
  (bench/compiled_proxies.py);
- at concurrency 64 (the highest level measured if 64 is not), two more rows, each with one worker: LiteLLM's proxy
  (bench/litellm_proxy.py installs it into bench/.venvs/litellm on first use; left out where that fails), with
  fewer requests since it is slow, also in the sequential rounds; gateway rows carry ``ratio_vs_litellm``. And
  the gateway with aiohttp as its upstream client (bench/gateway_aiohttp.py, bench/aiohttp_upstream.py): what
  the hand-written proxy/client.py gains over the library used well (``ratio_vs_gateway``);
- 100 concurrent streams (the upstream sends 16 chunks 20 ms apart): time to first token and inter-chunk delay.
Results: bench/results/gateway_bench.json and .png.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
import compiled_proxies
import litellm_proxy
from loadgen import closed_loop, concurrent_streams, encode_post, percentile_ms

from llmops_cli.infra import find_or_start_redis
from llmops_cli.procs import free_port, spawn, stop_processes
from llmops_testkit.gateway import new_secrets
from llmops_testkit.processes import wait_ready

RESULTS = Path(__file__).parent / "results"
CHUNKS, CHUNK_DELAY_S = 16, 0.02
REFERENCE_LEVEL = 64  # the concurrency of the LiteLLM and aiohttp-client rows


class Platform:
    """The fake upstream and one gateway process per worker count, sharing a SQLite store and Redis."""

    def __init__(self, tmp: Path, workers: list[int], litellm: litellm_proxy.Installed | None = None) -> None:
        self.tmp, self.procs = tmp, []
        self.redis = find_or_start_redis(tmp, die_with_parent=True)
        self.admin_token, key_secret = new_secrets()
        self.upstream_port, self.fastapi_port, self.floor_port = free_port(), free_port(), free_port()
        self.upstream_pid = self._spawn(
            "upstream",
            [sys.executable, "-m", "llmops_testkit.fake_upstream", "--port", str(self.upstream_port)]
            + ["--chunks", str(CHUNKS), "--chunk-delay", str(CHUNK_DELAY_S)],
        )
        # LiteLLM first: it takes the longest to start. (port, pid, master key), or None.
        self.litellm: tuple[int, int, str] | None = None
        if litellm is not None:
            port, argv, env, master_key = litellm_proxy.command(litellm, tmp, self.upstream_port, model="bench")
            self.litellm = (port, self._spawn("litellm", argv, env=env), master_key)
            litellm_proc, litellm_started = self.procs[-1], time.perf_counter()
        self.fastapi_pid = self._spawn(
            "fastapi-upstream",
            [sys.executable, "-m", "uvicorn", "fastapi_upstream:app", "--app-dir", str(Path(__file__).parent)]
            + ["--port", str(self.fastapi_port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"],
        )
        self.floor_pid = self._spawn(
            "python-floor-proxy",
            [sys.executable, str(Path(__file__).parent / "python_floor_proxy.py")]
            + ["--port", str(self.floor_port), "--upstream-port", str(self.upstream_port)],
        )
        # Compiled proxies, where installed, as references beside the Python floor: name -> (port, pid).
        self.compiled = {
            name: (port, self._spawn(name, argv))
            for name, (port, argv) in compiled_proxies.commands(tmp, self.upstream_port).items()
        }
        env = {
            "GATEWAY_ADMIN_TOKEN": self.admin_token,
            "GATEWAY_KEY_SECRET": key_secret,
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'gateway.db'}",
            "GATEWAY_REDIS_URL": self.redis.url,
            "GATEWAY_REDIS_KEY_PREFIX": f"bench:{os.getpid()}:",
            "GATEWAY_REQUEST_LOG_PATH": str(tmp / "request-log.jsonl"),
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
        self.gateway_ports, self.gateway_pids = {}, {}
        for count in workers:
            port = self.gateway_ports[count] = free_port()
            self.gateway_pids[count] = self._spawn(
                f"gateway-w{count}",
                [sys.executable, "-m", "llmops_gateway", "--port", str(port), "--workers", str(count)],
                env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"metrics-w{count}")} if count > 1 else env,
            )
        # The same gateway, one worker, with aiohttp as its upstream client.
        self.aiohttp_port = free_port()
        self.aiohttp_pid = self._spawn(
            "gateway-w1-aiohttp",
            [sys.executable, str(Path(__file__).parent / "gateway_aiohttp.py"), "--port", str(self.aiohttp_port)],
            env=env,
        )
        for port in (self.upstream_port, self.fastapi_port):
            wait_ready(f"http://127.0.0.1:{port}/v1/models", timeout_s=30)
        # The proxies pass whatever they get to the upstream: an answer means they are up.
        for port in (self.floor_port, *(port for port, _ in self.compiled.values())):
            wait_ready(f"http://127.0.0.1:{port}/v1/models", timeout_s=30)
        for port in (*self.gateway_ports.values(), self.aiohttp_port):
            wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=60)
        self.litellm_start_s = None
        if self.litellm is not None:
            try:
                wait_ready(f"http://127.0.0.1:{self.litellm[0]}/health/liveliness", timeout_s=240, process=litellm_proc)
                self.litellm_start_s = round(time.perf_counter() - litellm_started, 1)
            except (RuntimeError, TimeoutError) as exc:
                last = (tmp / "litellm.log").read_text(errors="replace").strip().splitlines()[-3:]
                print(f"note: LiteLLM left out: {exc}; its log ends: {last}", flush=True)
                self.litellm = None

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        log = self.tmp / f"{name}.log"
        self.procs.append(spawn(argv, log_path=log, env={**os.environ, **(env or {})}, die_with_parent=True))
        return self.procs[-1].pid

    def setup_route_and_keys(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{next(iter(self.gateway_ports.values()))}"
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {self.admin_token}"}) as admin:
            variant = {"name": "a", "upstream": f"http://127.0.0.1:{self.upstream_port}/v1", "model": "m"}
            admin.put("/admin/routes/bench", json={"variants": [variant]}).raise_for_status()
            variant = {"name": "a", "upstream": f"http://127.0.0.1:{self.fastapi_port}/v1", "model": "m"}
            admin.put("/admin/routes/bench-fastapi", json={"variants": [variant]}).raise_for_status()
            free = admin.post("/admin/keys", json={"name": "free"}).json()["key"]
            # Limits far above what the run sends: every request pays the check, none is refused.
            limits = {"rpm": 10**9, "tpm": 10**12, "tpd": 10**12}
            metered = admin.post("/admin/keys", json={"name": "metered", "limits": limits}).json()["key"]
        time.sleep(1.2)  # every worker's route and key caches see the new rows
        return {"free": free, "metered": metered}

    def stop(self) -> None:
        stop_processes(self.procs)
        self.redis.stop()


def cpu_seconds(pid: int | None) -> float:
    """CPU time of a process and its children (a gateway's workers); of this process when ``pid`` is None."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it just exited
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def chat(stream: bool, route: str = "bench") -> bytes:
    body = {"model": route, "messages": [{"role": "user", "content": "Say something short."}], "max_tokens": CHUNKS}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return orjson.dumps(body)


async def sequential(
    plat: Platform, keys: dict[str, str], *, requests: int, litellm_requests: int, rounds: int = 6
) -> dict:
    gw_port = plat.gateway_ports[min(plat.gateway_ports)]
    paths = {
        "direct": (plat.upstream_port, encode_post("127.0.0.1", "/v1/chat/completions", chat(False)), requests),
        "gateway": (gw_port, _gw_request(keys["free"], stream=False), requests),
        "gateway_quota": (gw_port, _gw_request(keys["metered"], stream=False), requests),
    }
    if plat.litellm is not None:  # fewer: each takes tens of milliseconds
        paths["litellm"] = (plat.litellm[0], _litellm_request(plat), max(rounds, litellm_requests // 4))
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):  # interleaved: noise hits every path alike
        for name, (port, raw, count) in paths.items():
            run = await closed_loop("127.0.0.1", port, raw, concurrency=1, requests=count // rounds)
            assert not run.errors, f"{name}: {run.errors} errors"
            samples[name] += run.latencies_s
    out = {
        name: {"p50_ms": percentile_ms(v, 50), "p99_ms": percentile_ms(v, 99), "n": len(v)}
        for name, v in samples.items()
    }
    for name in (name for name in paths if name != "direct"):
        out[f"added_{name}"] = {
            "p50_ms": round(out[name]["p50_ms"] - out["direct"]["p50_ms"], 3),
            "p99_ms": round(out[name]["p99_ms"] - out["direct"]["p99_ms"], 3),
        }
    out["quota_check_p50_ms"] = round(out["gateway_quota"]["p50_ms"] - out["gateway"]["p50_ms"], 3)
    return out


def _gw_request(key: str, *, stream: bool, route: str = "bench") -> bytes:
    return encode_post("127.0.0.1", "/v1/chat/completions", chat(stream, route), {"authorization": f"Bearer {key}"})


def _litellm_request(plat: Platform) -> bytes:
    """The gateway's request body (model "bench", LiteLLM's name for the fake) with LiteLLM's master key."""
    return _gw_request(plat.litellm[2], stream=False)


async def concurrency_levels(
    plat: Platform, keys: dict[str, str], *, levels: list[int], requests: int, litellm_requests: int
) -> list[dict]:
    rows = []
    direct = encode_post("127.0.0.1", "/v1/chat/completions", chat(False))
    # name: (port, request, the proxy's pid (None: direct), the upstream's pid)
    targets = {"direct": (plat.upstream_port, direct, None, plat.upstream_pid)}
    targets["python_floor"] = (plat.floor_port, direct, plat.floor_pid, plat.upstream_pid)
    for name, (port, pid) in plat.compiled.items():
        targets[name] = (port, direct, pid, plat.upstream_pid)
    for count, port in plat.gateway_ports.items():
        targets[f"gateway_w{count}"] = (
            port,
            _gw_request(keys["metered"], stream=False),
            plat.gateway_pids[count],
            plat.upstream_pid,
        )
    # What the quota check costs under load: the same gateway with a key without limits.
    fewest = min(plat.gateway_ports)
    targets[f"gateway_w{fewest}_nolimits"] = (
        plat.gateway_ports[fewest],
        _gw_request(keys["free"], stream=False),
        plat.gateway_pids[fewest],
        plat.upstream_pid,
    )
    # The same against an upstream built like vLLM's API server (bench/fastapi_upstream.py).
    direct_fastapi = encode_post("127.0.0.1", "/v1/chat/completions", chat(False))
    targets["direct_fastapi"] = (plat.fastapi_port, direct_fastapi, None, plat.fastapi_pid)
    most = max(plat.gateway_ports)
    targets[f"gateway_w{most}_fastapi"] = (
        plat.gateway_ports[most],
        _gw_request(keys["metered"], stream=False, route="bench-fastapi"),
        plat.gateway_pids[most],
        plat.fastapi_pid,
    )
    # Measured at one level only: name -> requests per round there.
    reference_level = REFERENCE_LEVEL if REFERENCE_LEVEL in levels else max(levels)
    only_at = {"gateway_w1_aiohttp": requests}
    targets["gateway_w1_aiohttp"] = (
        plat.aiohttp_port,
        _gw_request(keys["metered"], stream=False),
        plat.aiohttp_pid,
        plat.upstream_pid,
    )
    if plat.litellm is not None:
        only_at["litellm"] = litellm_requests
        targets["litellm"] = (plat.litellm[0], _litellm_request(plat), plat.litellm[1], plat.upstream_pid)
    for level in levels:
        here = {name: t for name, t in targets.items() if name not in only_at or level == reference_level}
        runs: dict[str, list] = {name: [] for name in here}
        cpu: dict[str, list] = {name: [] for name in here}
        for _ in range(2):
            for name, (port, raw, proxy_pid, upstream_pid) in here.items():
                pids = {"proxy": proxy_pid, "upstream": upstream_pid, "load_generator": None}
                before = {role: cpu_seconds(pid) for role, pid in pids.items() if role != "proxy" or pid}
                count = only_at.get(name, requests)
                run = await closed_loop("127.0.0.1", port, raw, concurrency=level, requests=count)
                cpu[name].append({role: cpu_seconds(pids[role]) - was for role, was in before.items()})
                runs[name].append(run)
        for name, measured in runs.items():
            latencies = [x for run in measured for x in run.latencies_s]
            rows.append(
                {
                    "path": name,
                    "concurrency": level,
                    "throughput_rps": round(statistics.mean(r.throughput for r in measured), 1),
                    "p50_ms": percentile_ms(latencies, 50),
                    "p99_ms": percentile_ms(latencies, 99),
                    "errors": sum(r.errors for r in measured),
                    "seconds": round(sum(r.elapsed_s for r in measured), 1),
                    "cpu_us_per_request": {
                        role: round(1e6 * sum(c[role] for c in cpu[name]) / max(1, len(latencies)), 1)
                        for role in cpu[name][0]
                    },
                }
            )
        level_rows = {r["path"]: r for r in rows if r["concurrency"] == level}
        for name, row in level_rows.items():
            if not name.startswith("direct"):
                row["reference"] = "direct_fastapi" if name.endswith("_fastapi") else "direct"
                direct = level_rows[row["reference"]]
                row["throughput_vs_direct"] = round(row["throughput_rps"] / direct["throughput_rps"], 3)
                row["added_p99_ms"] = round(row["p99_ms"] - direct["p99_ms"], 3)
        litellm, gateway = level_rows.get("litellm"), level_rows.get("gateway_w1")
        for name, row in level_rows.items():
            if litellm and name.startswith("gateway") and not name.endswith("_fastapi"):
                row["ratio_vs_litellm"] = round(row["throughput_rps"] / litellm["throughput_rps"], 2)
        if gateway and "gateway_w1_aiohttp" in level_rows:
            aiohttp_row = level_rows["gateway_w1_aiohttp"]
            aiohttp_row["ratio_vs_gateway"] = round(aiohttp_row["throughput_rps"] / gateway["throughput_rps"], 3)
        print(
            f"  concurrency {level}: "
            + ", ".join(f"{r['path']} {r['throughput_rps']} rps" for r in level_rows.values())
        )
    return rows


async def streaming(plat: Platform, keys: dict[str, str], *, streams: int, rounds: int = 3) -> dict:
    gw_port = plat.gateway_ports[max(plat.gateway_ports)]
    paths = {
        "direct": (plat.upstream_port, encode_post("127.0.0.1", "/v1/chat/completions", chat(True))),
        "gateway": (gw_port, _gw_request(keys["metered"], stream=True)),
    }
    ttft: dict[str, list[float]] = {name: [] for name in paths}
    gaps: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, (port, raw) in paths.items():
            run = await concurrent_streams("127.0.0.1", port, raw, streams=streams)
            assert not run.errors, f"{name}: {run.errors} failed streams"
            ttft[name] += run.ttft_s
            gaps[name] += run.gaps_s
    out = {
        name: {
            "ttft_p50_ms": percentile_ms(ttft[name], 50),
            "ttft_p99_ms": percentile_ms(ttft[name], 99),
            "gap_p50_ms": percentile_ms(gaps[name], 50),
            "gap_p99_ms": percentile_ms(gaps[name], 99),
        }
        for name in paths
    }
    out["added"] = {k: round(out["gateway"][k] - out["direct"][k], 3) for k in out["direct"]}
    out["streams"], out["gateway_workers"] = streams, max(plat.gateway_ports)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (seq_ax, tput_ax, cpu_ax, stream_ax) = plt.subplots(1, 4, figsize=(21, 4.8))
    seq = results["sequential"]
    names = ["direct", "gateway", "gateway_quota"]
    x = range(len(names))
    seq_ax.bar([i - 0.2 for i in x], [seq[n]["p50_ms"] for n in names], 0.4, label="p50")
    seq_ax.bar([i + 0.2 for i in x], [seq[n]["p99_ms"] for n in names], 0.4, label="p99")
    seq_ax.set_xticks(list(x), ["direct", "gateway", "gateway +\nquota check"])
    seq_ax.set_ylabel("ms")
    seq_ax.set_title("Sequential latency")
    seq_ax.legend()

    rows = results["concurrency"]
    for name in sorted({r["path"] for r in rows}):
        series = sorted((r for r in rows if r["path"] == name), key=lambda r: r["concurrency"])
        tput_ax.plot([r["concurrency"] for r in series], [r["throughput_rps"] for r in series], marker="o", label=name)
    tput_ax.set_xscale("log", base=2)
    tput_ax.set_xlabel("concurrent clients")
    tput_ax.set_ylabel("requests/s")
    tput_ax.set_title("Throughput (closed loop)")
    tput_ax.legend()

    # Where the CPU goes, per request, at the highest concurrency: the 2 cores are shared by all three.
    top = max(r["concurrency"] for r in rows)
    at_top = [r for r in rows if r["concurrency"] == top and not r["path"].endswith("_fastapi")]
    bottom = [0.0] * len(at_top)
    for role in ("load_generator", "upstream", "proxy"):
        heights = [r["cpu_us_per_request"].get(role, 0.0) for r in at_top]
        cpu_ax.bar(range(len(at_top)), heights, 0.6, bottom=bottom, label=role.replace("_", " "))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    cpu_ax.set_xticks(range(len(at_top)), [r["path"].replace("_", "\n", 1) for r in at_top])
    cpu_ax.set_ylabel("CPU µs per request")
    cpu_ax.set_title(f"CPU per request at concurrency {top}")
    cpu_ax.legend()

    st = results["streaming"]
    metrics = ["ttft_p50_ms", "ttft_p99_ms", "gap_p50_ms", "gap_p99_ms"]
    x = range(len(metrics))
    stream_ax.bar([i - 0.2 for i in x], [st["direct"][m] for m in metrics], 0.4, label="direct")
    stream_ax.bar([i + 0.2 for i in x], [st["gateway"][m] for m in metrics], 0.4, label="gateway")
    stream_ax.set_xticks(list(x), ["TTFT p50", "TTFT p99", "gap p50", "gap p99"])
    stream_ax.set_ylabel("ms")
    stream_ax.set_title(f"{st['streams']} concurrent streams ({CHUNK_DELAY_S * 1000:.0f} ms between chunks)")
    stream_ax.legend()
    fig.suptitle(f"Gateway vs direct to a fake upstream, {os.cpu_count()} cores, one run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def run_all(plat: Platform, args) -> dict:
    keys = plat.setup_route_and_keys()
    warm = _gw_request(keys["metered"], stream=False)
    for port in (*plat.gateway_ports.values(), plat.aiohttp_port):  # warm every worker's caches and pools
        await closed_loop("127.0.0.1", port, warm, concurrency=16, requests=800)
    if plat.litellm is not None:
        await closed_loop("127.0.0.1", plat.litellm[0], _litellm_request(plat), concurrency=8, requests=100)
    print("sequential ...", flush=True)
    seq = await sequential(plat, keys, requests=args.requests, litellm_requests=args.litellm_requests)
    print(f"  added p50 {seq['added_gateway']['p50_ms']} ms, p99 {seq['added_gateway']['p99_ms']} ms", flush=True)
    if "added_litellm" in seq:
        print(f"  LiteLLM added p50 {seq['added_litellm']['p50_ms']} ms", flush=True)
    print("concurrency ...", flush=True)
    levels = await concurrency_levels(
        plat, keys, levels=args.concurrency, requests=args.requests, litellm_requests=args.litellm_requests
    )
    print("streaming ...", flush=True)
    streams = await streaming(plat, keys, streams=args.streams)
    print(f"  added TTFT p50 {streams['added']['ttft_p50_ms']} ms, gap p99 {streams['added']['gap_p99_ms']} ms")
    return {"sequential": seq, "concurrency": levels, "streaming": streams}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per path and level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="gateway worker counts to compare")
    parser.add_argument(
        "--litellm-requests", type=int, default=1200, help=f"LiteLLM's requests per round at {REFERENCE_LEVEL}"
    )
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM's rows out")
    parser.add_argument("--litellm-spec", default=litellm_proxy.SPEC, help="what pip installs for LiteLLM")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    litellm = None if args.no_litellm else litellm_proxy.ensure_installed(args.litellm_spec)
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        plat = Platform(Path(tmp), args.workers, litellm)
        try:
            results = uvloop.run(run_all(plat, args))
        finally:
            plat.stop()
    settings = {"requests": args.requests, "chunks": CHUNKS, "chunk_delay_s": CHUNK_DELAY_S}
    if plat.litellm is not None:
        settings["litellm"] = {
            "version": litellm.version,
            "spec": args.litellm_spec,
            "requests": args.litellm_requests,
            "install_s": litellm.install_s,  # None: it was installed already
            "start_s": plat.litellm_start_s,
        }
    report = {
        "benchmark": "gateway",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": settings,
        **results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gateway_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "gateway_bench.png")
    print(f"wrote {args.out / 'gateway_bench.json'} and .png")


if __name__ == "__main__":
    main()
