"""A real Prometheus server for tests (Debian's ``prometheus`` package): our own process, config, data directory
and port, never the package's system service. Scrape targets are files it watches, so a test adds services as
they come up, and Prometheus scrapes each from its first seconds."""

import json
import math
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
import yaml

from llmops_cli.procs import free_port, log_tail, spawn, stop_processes

INSTALL_HINT = "install Debian's prometheus package (make install does when run as root): apt-get install prometheus"


def binary(name: str) -> str:
    """``prometheus`` or ``promtool``; a clear failure when the package is missing."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        raise RuntimeError(f"{name} not found: {INSTALL_HINT}")
    return found


class PrometheusServer:
    def __init__(self, state_dir: Path, *, jobs: list[str], rule_files: list[Path] = (), interval_s: int = 1) -> None:
        self.state_dir = Path(state_dir)
        self.targets_dir = self.state_dir / "targets"
        self.port = free_port()
        self.jobs = jobs
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.interval_s = interval_s
        self.log_path = self.state_dir / "prometheus.log"
        self.process: subprocess.Popen | None = None
        self.started_at: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> dict:
        interval = f"{self.interval_s}s"
        return {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "file_sd_configs": [{"files": [str(self.targets_dir / f"{job}.json")], "refresh_interval": "1s"}],
                }
                for job in self.jobs
            ],
        }

    def start(self, *, timeout_s: float = 30.0) -> "PrometheusServer":
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        for job in self.jobs:
            self.set_targets(job, [])
        config = self.state_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config(), sort_keys=False))
        argv = [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.state_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
        ]
        self.process = spawn(argv, log_path=self.log_path, die_with_parent=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}: {log_tail(self.log_path, 30)}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus not ready after {timeout_s:.0f}s: {log_tail(self.log_path, 30)}")
            time.sleep(0.2)
        self.started_at = time.time()
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], timeout_s=10)

    def set_targets(self, job: str, urls: list[str]) -> None:
        """The scrape targets of ``job`` ("http://127.0.0.1:8000"); written whole, then renamed: never half-read."""
        targets = [url.removeprefix("http://").rstrip("/") for url in urls]
        path = self.targets_dir / f"{job}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": targets, "labels": {}}] if targets else []))
        tmp.replace(path)

    # --- the HTTP API ---

    def api(self, path: str, **params) -> dict:
        """The ``data`` of a successful answer; an AssertionError with Prometheus's error otherwise."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result: a list of series (vectors; scalars are returned as one series)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def targets_health(self, *, since: float = 0.0) -> dict[str, list[str]]:
        """job -> health of each active target ("up", "down", "unknown"), with the last scrape error if any;
        "unknown" also for a target not scraped since ``since`` (a ``time.time()``)."""
        health: dict[str, list[str]] = {}
        for target in self.api("targets", state="active")["activeTargets"]:
            error = f" ({target['lastError']})" if target.get("lastError") else ""
            scraped = datetime.fromisoformat(target["lastScrape"]).timestamp() >= since
            health.setdefault(target["labels"]["job"], []).append(target["health"] + error if scraped else "unknown")
        return health

    def wait_scraped(self, jobs: list[str], *, since: float = 0.0, timeout_s: float = 30.0) -> None:
        """Until every target of ``jobs`` has been scraped successfully at least once, by a scrape that began at
        ``since`` or later (a ``time.time()``: what a test did before it is in the samples)."""
        deadline = time.monotonic() + timeout_s
        while True:
            health = self.targets_health(since=since)
            if all(health.get(job) and all(h == "up" for h in health[job]) for job in jobs):
                return
            assert time.monotonic() < deadline, f"targets not up after {timeout_s:.0f}s: {health}"
            time.sleep(0.2)


def finite(series: list[dict]) -> bool:
    """True when at least one sample of an instant query's result is a number (not NaN, not ±Inf)."""
    return any(math.isfinite(float(s["value"][1])) for s in series)
