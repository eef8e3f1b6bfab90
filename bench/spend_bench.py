"""Spend benchmark: what spend accounting adds to a request, against this gateway without it, in the same run.

    .venv/bin/python bench/spend_bench.py [--requests 10000] [--concurrency 64] [--rounds 10] [--base REV]

One run on this machine: the fake OpenAI upstream in its own process, and two one-worker gateways on one Redis
and their own SQLite stores, set up alike (one route, a price for its variant, the same keys). The baseline is
this tree's gateway with its spend accounting taken out (bench/gateway_without_spend.py lists exactly what goes:
price lookup, cost, the spend sums and their SQL flushes, the spend metric). ``--base REV`` makes the baseline
the gateway as of a git revision instead (checked out with ``git archive``): that compares revisions, everything
between them and not spend alone. Paths, measured in interleaved rounds (the order reversed every other round) so
that machine noise hits them alike, at one concurrency:
- spend / baseline, a key without limits: pricing each request and summing its spend;
- spend / baseline, a key with token limits (quota leased: mostly no Redis call): the same, quota checked;
- spend with a currency budget / baseline with token limits: a budget cannot exist without spend accounting (it
  reserves a worst-case price and reconciles the real cost), so the nearest baseline is a key whose quota is
  checked; the ratio adds the budget's Redis round trip on every request (budgets never lease) to spend's cost.
After the rounds the spend gateway's /metrics must show spend and the same-tree baseline's none, or the run fails.
Results: bench/results/spend_bench.json and .png.
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
WITHOUT_SPEND = Path(__file__).parent / "gateway_without_spend.py"
# Each measured path against its reference, in the order they are reported.
REFERENCES = {"spend_free": "baseline_free", "spend_limits": "baseline_limits", "spend_budget": "baseline_limits"}


def checkout(revision: str, into: Path) -> dict[str, str]:
    """The gateway and its shared library as of ``revision``: the PYTHONPATH that runs them."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "services/gateway/src", "libs/common/src"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return {"PYTHONPATH": f"{into / 'services/gateway/src'}:{into / 'libs/common/src'}"}


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def body() -> bytes:
    return orjson.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": "Say something."}], "max_tokens": 16}
    )


class Platform:
    def __init__(self, tmp: Path, base: str | None) -> None:
        self.procs = []
        self.redis = find_or_start_redis(tmp, die_with_parent=True)
        self.upstream_port = free_port()
        self.upstream_pid = self._spawn(
            tmp, "upstream", [sys.executable, "-m", "llmops_testkit.fake_upstream", "--port", str(self.upstream_port)]
        )
        gateway = [sys.executable, "-m", "llmops_gateway"]
        if base is None:
            baseline = ([sys.executable, str(WITHOUT_SPEND)], {})
        else:
            (tmp / "base").mkdir()
            baseline = (gateway, checkout(base, tmp / "base"))
        self.ports, self.pids, self.admin = {}, {}, {}
        for name, (argv, extra) in (("baseline", baseline), ("spend", (gateway, {}))):
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
            self.pids[name] = self._spawn(tmp, f"gateway-{name}", [*argv, "--port", str(port), "--workers", "1"], env)
            self.admin[name] = admin_token
        wait_ready(f"http://127.0.0.1:{self.upstream_port}/v1/models", timeout_s=30)
        for port in self.ports.values():
            wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=60)

    def _spawn(self, tmp: Path, name: str, argv: list[str], env: dict | None = None) -> int:
        self.procs.append(
            spawn(argv, log_path=tmp / f"{name}.log", env={**os.environ, **(env or {})}, die_with_parent=True)
        )
        return self.procs[-1].pid

    def _admin(self, name: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.ports[name]}", headers={"authorization": f"Bearer {self.admin[name]}"}
        )

    def keys(self) -> dict[str, tuple[int, int, bytes]]:
        """Path name -> the gateway's port, its pid and the raw request for it."""
        requests = {}
        limits = {
            "rpm": 2**31 - 1,
            "tpm": 2**31 - 1,
            "tpd": 2**31 - 1,
        }  # the most a limit may be: checked, never refused
        for name in self.ports:
            with self._admin(name) as admin:
                variant = {"name": "a", "upstream": f"http://127.0.0.1:{self.upstream_port}/v1", "model": "m"}
                admin.put("/admin/routes/bench", json={"variants": [variant]}).raise_for_status()
                # Set on both: the same setup, so that only the launcher differs. A revision older than prices
                # answers 404 or 405, and its gateway charges nothing anyway.
                price = admin.put("/admin/prices/a", json={"input_per_mtok": "0.5", "output_per_mtok": "1.5"})
                if price.status_code not in (404, 405):
                    price.raise_for_status()
                keys = {"free": {}, "limits": {"limits": limits}}
                if name == "spend":  # budgets are spend accounting: the baseline has no such path
                    keys["budget"] = {"budget": {"daily": "1000000", "monthly": "1000000"}}
                for kind, fields in keys.items():
                    secret = admin.post("/admin/keys", json={"name": kind, **fields}).raise_for_status().json()["key"]
                    headers = {"authorization": f"Bearer {secret}"}
                    raw = encode_post("127.0.0.1", "/v1/chat/completions", body(), headers)
                    requests[f"{name}_{kind}"] = (self.ports[name], self.pids[name], raw)
        time.sleep(1.2)  # route, key and price caches see the new rows
        return dict(sorted(requests.items()))

    def spend_counted(self, name: str) -> float:
        """The sum of the gateway's ``llmops_gateway_spend`` counter, in its currency."""
        with self._admin(name) as admin:
            text = admin.get("/metrics").raise_for_status().text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("llmops_gateway_spend_total{")
        )

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
    for i in range(rounds):
        # Reversed every other round: no path always runs right after the same one, or always first.
        for name in list(paths) if i % 2 == 0 else reversed(list(paths)):
            port, pid, raw = paths[name]
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
            "throughput_rounds_rps": [round(r.throughput, 1) for r in measured],
            "p50_ms": percentile_ms(latencies, 50),
            "p99_ms": percentile_ms(latencies, 99),
            "gateway_cpu_us_per_request": round(1e6 * cpu[name] / len(latencies), 1),
        }
    for name, reference in REFERENCES.items():
        row, ref = rows[name], rows[reference]
        row["reference"] = reference
        row["throughput_vs_reference"] = round(row["throughput_rps"] / ref["throughput_rps"], 3)
        # Round by round (each pair measured minutes apart at most): how far the ratio moves with the machine.
        pairs = zip(row["throughput_rounds_rps"], ref["throughput_rounds_rps"], strict=True)
        row["throughput_vs_reference_rounds"] = [round(a / b, 3) for a, b in pairs]
    return [rows[name] for name in ("baseline_free", "spend_free", "baseline_limits", "spend_limits", "spend_budget")]


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None),
        "memory_gib": round(int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1]) / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    labels = [row["path"].replace("_", "\n") for row in rows]
    colours = ["tab:grey" if row["path"].startswith("baseline") else "tab:blue" for row in rows]
    fig, (tput_ax, cpu_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    bars = tput_ax.bar(labels, [row["throughput_rps"] for row in rows], color=colours)
    for bar, row in zip(bars, rows, strict=True):
        if "reference" in row:
            ratio = f"{row['throughput_vs_reference']:.3f}x\n{row['reference'].replace('_', ' ')}"
            tput_ax.annotate(ratio, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    tput_ax.set_ylabel("requests/s (mean of rounds)")
    tput_ax.set_ylim(0, max(row["throughput_rps"] for row in rows) * 1.25)
    tput_ax.set_title(f"Throughput at concurrency {rows[0]['concurrency']}")
    cpu_ax.bar(labels, [row["gateway_cpu_us_per_request"] for row in rows], color=colours)
    cpu_ax.set_ylabel("gateway CPU µs per request")
    cpu_ax.set_title("Gateway CPU per request")
    fig.suptitle(f"Spend accounting vs baseline ({report['settings']['baseline']}), {os.cpu_count()} cores, one run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", default=None, help="compare with the gateway of this git revision instead of this tree without spend"
    )
    parser.add_argument("--requests", type=int, default=10000, help="requests per path and round")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="interleaved rounds; ten: three left the ratio at the noise of the shared machine",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started, load_at_start = time.time(), [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="spend-bench-") as tmp:
        plat = Platform(Path(tmp), args.base)
        try:
            rows = uvloop.run(measure(plat, requests=args.requests, concurrency=args.concurrency, rounds=args.rounds))
            time.sleep(0.5)  # the spend gateway's last requests are counted
            spend = {name: plat.spend_counted(name) for name in plat.ports}
        finally:
            plat.stop()
    if spend["spend"] <= 0 or (args.base is None and spend["baseline"] != 0):
        raise SystemExit(f"spend counted {spend}: the spend gateway must count some, the baseline none")
    for row in rows:
        ratio = f" = {row['throughput_vs_reference']}x {row['reference']}" if "reference" in row else ""
        print(
            f"{row['path']:>15}: {row['throughput_rps']} req/s{ratio}, p99 {row['p99_ms']} ms, "
            f"{row['gateway_cpu_us_per_request']} µs CPU/request"
        )
    report = {
        "benchmark": "spend",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "load_average_at_start": load_at_start,  # 1, 5 and 15 minutes: how busy the shared machine was
        "settings": {
            "baseline": "same tree without spend accounting" if args.base is None else "git revision",
            "baseline_launcher": "bench/gateway_without_spend.py" if args.base is None else None,
            "base": args.base,
            "base_commit": git("rev-parse", args.base) if args.base else None,
            "commit": git("rev-parse", "HEAD"),
            # Uncommitted changes to the code measured: the commit alone would not name what ran.
            "uncommitted_changes": bool(
                git(
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                    "--",
                    "services",
                    "libs",
                    "bench",
                    ":!bench/results",
                )
            ),
            "requests": args.requests,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
        },
        "spend_metric_after_run": spend,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spend_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "spend_bench.png")
    print(f"wrote {args.out / 'spend_bench.json'} and .png")


if __name__ == "__main__":
    main()
