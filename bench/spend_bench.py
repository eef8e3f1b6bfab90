"""Spend benchmark: what spend accounting and currency budgets add to a request, against the gateway without them.

    .venv/bin/python bench/spend_bench.py [--base main] [--requests 10000] [--concurrency 64] [--rounds 3]

One run on this machine: the fake OpenAI upstream in its own process, and two one-worker gateways on one Redis
and their own SQLite stores: this tree's, and the same gateway as of ``--base`` (a git revision without spend
accounting, checked out with ``git archive`` into a temporary directory and run from there). Paths, measured in
interleaved rounds so that machine noise hits them alike, at one concurrency:
- base / spend, a key without limits: the cost of charging each request its price and summing it for SQL;
- base / spend, a key with token limits (quota leased: mostly no Redis call): the same with quotas;
- spend, a key with a currency budget: every request reserved in Redis (budgets never lease) and reconciled.
Results: bench/results/spend_bench.json.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import closed_loop, encode_post, percentile_ms

from llmops_cli.infra import find_or_start_redis
from llmops_cli.procs import free_port, spawn, stop_processes
from llmops_testkit.gateway import new_secrets
from llmops_testkit.processes import wait_ready

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent


def checkout(revision: str, into: Path) -> dict[str, str]:
    """The gateway and its shared library as of ``revision``: the PYTHONPATH that runs them."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "services/gateway/src", "libs/common/src"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return {"PYTHONPATH": f"{into / 'services/gateway/src'}:{into / 'libs/common/src'}"}


def git_commit(revision: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", revision], capture_output=True, text=True, check=True
    ).stdout.strip()


def body() -> bytes:
    return orjson.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": "Say something."}], "max_tokens": 16}
    )


class Platform:
    def __init__(self, tmp: Path, base: str) -> None:
        self.procs = []
        self.redis = find_or_start_redis(tmp, die_with_parent=True)
        self.upstream_port = free_port()
        self.upstream_pid = self._spawn(
            tmp, "upstream", [sys.executable, "-m", "llmops_testkit.fake_upstream", "--port", str(self.upstream_port)]
        )
        self.ports, self.pids, self.admin = {}, {}, {}
        base_dir = tmp / "base"
        base_dir.mkdir()
        for name, extra in (("base", checkout(base, base_dir)), ("spend", {})):
            admin_token, key_secret = new_secrets()
            port = self.ports[name] = free_port()
            env = {
                "GATEWAY_ADMIN_TOKEN": admin_token,
                "GATEWAY_KEY_SECRET": key_secret,
                "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / f'{name}.db'}",
                "GATEWAY_REDIS_URL": self.redis.url,
                "GATEWAY_REDIS_KEY_PREFIX": f"bench:{name}:{os.getpid()}:",
                "GATEWAY_REQUEST_LOG_SINK": "none",
                "GATEWAY_LOG_LEVEL": "WARNING",
                **extra,
            }
            argv = [sys.executable, "-m", "llmops_gateway", "--port", str(port), "--workers", "1"]
            self.pids[name] = self._spawn(tmp, f"gateway-{name}", argv, env)
            self.admin[name] = admin_token
        wait_ready(f"http://127.0.0.1:{self.upstream_port}/v1/models", timeout_s=30)
        for port in self.ports.values():
            wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=60)

    def _spawn(self, tmp: Path, name: str, argv: list[str], env: dict | None = None) -> int:
        self.procs.append(
            spawn(argv, log_path=tmp / f"{name}.log", env={**os.environ, **(env or {})}, die_with_parent=True)
        )
        return self.procs[-1].pid

    def keys(self) -> dict[str, bytes]:
        """Path name -> the raw request for it."""
        requests = {}
        limits = {"rpm": 10**9, "tpm": 10**12, "tpd": 10**12}  # far above the run: every request checked, none refused
        for name, port in self.ports.items():
            admin = httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {self.admin[name]}"}
            )
            variant = {"name": "a", "upstream": f"http://127.0.0.1:{self.upstream_port}/v1", "model": "m"}
            admin.put("/admin/routes/bench", json={"variants": [variant]}).raise_for_status()
            keys = {"free": {}, "limits": {"limits": limits}}
            if name == "spend":
                price = {"input_per_mtok": "0.5", "output_per_mtok": "1.5"}
                admin.put("/admin/prices/a", json=price).raise_for_status()
                keys["budget"] = {"budget": {"daily": "1000000", "monthly": "1000000"}}
            for kind, fields in keys.items():
                secret = admin.post("/admin/keys", json={"name": kind, **fields}).raise_for_status().json()["key"]
                requests[f"{name}_{kind}"] = (
                    port,
                    self.pids[name],
                    encode_post("127.0.0.1", "/v1/chat/completions", body(), {"authorization": f"Bearer {secret}"}),
                )
            admin.close()
        time.sleep(1.2)  # route, key and price caches see the new rows
        return requests

    def stop(self) -> None:
        stop_processes(self.procs)
        self.redis.stop()


def cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


async def measure(plat: Platform, *, requests: int, concurrency: int, rounds: int) -> list[dict]:
    paths = plat.keys()
    for port, _, raw in paths.values():  # warm caches and pools
        await closed_loop("127.0.0.1", port, raw, concurrency=16, requests=1000)
    runs = {name: [] for name in paths}
    cpu = {name: 0.0 for name in paths}
    for _ in range(rounds):
        for name, (port, pid, raw) in paths.items():
            before = cpu_seconds(pid)
            run = await closed_loop("127.0.0.1", port, raw, concurrency=concurrency, requests=requests)
            cpu[name] += cpu_seconds(pid) - before
            assert not run.errors, f"{name}: {run.errors} errors"
            runs[name].append(run)
    rows = {}
    for name, measured in runs.items():
        latencies = [x for run in measured for x in run.latencies_s]
        rows[name] = {
            "path": name,
            "concurrency": concurrency,
            "throughput_rps": round(statistics.mean(r.throughput for r in measured), 1),
            "p50_ms": percentile_ms(latencies, 50),
            "p99_ms": percentile_ms(latencies, 99),
            "gateway_cpu_us_per_request": round(1e6 * cpu[name] / len(latencies), 1),
        }
    for name, reference in (
        ("spend_free", "base_free"),
        ("spend_limits", "base_limits"),
        ("spend_budget", "base_limits"),
    ):
        rows[name]["reference"] = reference
        rows[name]["throughput_vs_reference"] = round(
            rows[name]["throughput_rps"] / rows[reference]["throughput_rps"], 3
        )
    return list(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="the git revision to compare with (without spend accounting)")
    parser.add_argument("--requests", type=int, default=10000, help="requests per path and round")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spend-bench-") as tmp:
        plat = Platform(Path(tmp), args.base)
        try:
            rows = uvloop.run(measure(plat, requests=args.requests, concurrency=args.concurrency, rounds=args.rounds))
        finally:
            plat.stop()
    for row in rows:
        ratio = f" = {row['throughput_vs_reference']}x {row['reference']}" if "reference" in row else ""
        print(
            f"{row['path']:>13}: {row['throughput_rps']} req/s{ratio}, p99 {row['p99_ms']} ms, "
            f"{row['gateway_cpu_us_per_request']} µs CPU/request"
        )
    report = {
        "benchmark": "spend",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {
            "base": args.base,
            # the commit, not only the name a branch had: "main" moves, and the ratios mean nothing without it
            "base_commit": git_commit(args.base),
            "commit": git_commit("HEAD"),  # this tree's (uncommitted changes not shown)
            "requests": args.requests,
            "rounds": args.rounds,
        },
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spend_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'spend_bench.json'}")


if __name__ == "__main__":
    main()
