"""``llmops demo --fast`` as a new user runs it, on the platform ``llmops up`` starts (what ``make run`` starts, on
free ports and a fresh state directory), and the closed loop runs on the real parts: users' ratings with
corrections, the retraining policy firing a real LoRA job, the adapter registered in MLflow and served by vLLM, an
experiment canarying it, the controller promoting it. The report and its plot are written. Then the web console
on the same platform, signed in with the admin token ``llmops up`` generated: every page answers, no key secret."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llmops_cli.client import admin_token
from llmops_cli.demo.platform import ensure_running
from llmops_cli.procs import free_port
from llmops_cli.services import DEFAULT_PORTS, service_url
from llmops_testkit import console
from llmops_testkit.inference import prepare_bundled_model

# The whole platform and a training job on a busy 2-core machine: minutes, so scheduled first.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.long]


@pytest.fixture
def platform_env(tmp_path, monkeypatch) -> Path:
    """A fresh state directory and free ports, for this process and the platform it starts; no URL or token from
    outside, so the CLI finds what ``llmops up`` generated. The state directory."""
    home = tmp_path / "home"
    for name in [k for k in os.environ if k.startswith("LLMOPS_") and k.endswith(("_URL", "_TOKEN"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    for name in DEFAULT_PORTS:
        monkeypatch.setenv(f"LLMOPS_{name.upper()}_PORT", str(free_port()))
    return home


def _logs(home: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((home / "logs").glob("*.log")))


def test_the_demo_closes_the_loop_and_promotes_the_adapter(platform_env, tmp_path):
    prepare_bundled_model()
    out = tmp_path / "report"
    try:
        with ensure_running(log=print):  # `llmops up`, stopped at the end; the demo finds it running and uses it
            done = subprocess.run(
                [sys.executable, "-m", "llmops_cli.main", "demo", "--fast", "--out", str(out)],
                check=False,
                capture_output=True,
                text=True,
                timeout=1700,
            )
            assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n{_logs(platform_env)}"
            assert "decision: PROMOTED" in done.stdout, done.stdout[-4000:]
            opened = console.smoke(service_url("gateway"), admin_token())
            # The demo leaves the trainer idle: a job its policy starts after the decision is cancelled, not left
            # for the platform's next start to train first.
            jobs = httpx.get(
                f"{service_url('trainer')}/jobs",
                headers={"authorization": f"Bearer {admin_token()}"},
                timeout=30,
                trust_env=False,
            ).json()["data"]
            busy = [j["id"] for j in jobs if j["state"] in ("queued", "running") and not j["cancel_requested"]]
            assert not busy, jobs
    except RuntimeError as exc:  # `llmops up` did not get the platform ready
        raise AssertionError(f"{exc}\n{_logs(platform_env)}") from None
    assert any(p.startswith("/console/experiments/") for p in opened), opened  # the demo's experiment, opened too
    report = (out / "report.md").read_text()
    assert "promoted" in report.lower()
    # the retraining wait broken into the job's phases, from the trainer's API and inference's model list
    assert "| a training worker took it" in report and "| inference served the adapter |" in report, report
    assert (out / "report.png").stat().st_size > 10_000
    assert Path(out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
