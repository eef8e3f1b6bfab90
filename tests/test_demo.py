"""``llmops demo --fast`` as a new user runs it: it starts the platform itself (``llmops up``, what ``make run``
starts, on free ports and a fresh state directory), and the closed loop runs on the real parts: users' ratings
with corrections, the retraining policy firing a real LoRA job, the adapter registered in MLflow and served by
vLLM, an experiment canarying it, the controller promoting it. The report and its plot are written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmops_cli.procs import free_port
from llmops_cli.services import DEFAULT_PORTS
from llmops_testkit.inference import prepare_bundled_model

pytestmark = pytest.mark.timeout(1800)  # the whole platform and a training job on a busy 2-core machine


def test_the_demo_closes_the_loop_and_promotes_the_adapter(tmp_path):
    prepare_bundled_model()
    home, out = tmp_path / "home", tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not (k.startswith("LLMOPS_") and k.endswith(("_URL", "_TOKEN")))}
    env |= {"LLMOPS_HOME": str(home)} | {f"LLMOPS_{name.upper()}_PORT": str(free_port()) for name in DEFAULT_PORTS}
    done = subprocess.run(
        [sys.executable, "-m", "llmops_cli.main", "demo", "--fast", "--out", str(out)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=1700,
    )
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((home / "logs").glob("*.log")))
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n{logs}"
    assert "decision: PROMOTED" in done.stdout, done.stdout[-4000:]
    report = (out / "report.md").read_text()
    assert "promoted" in report.lower()
    assert (out / "report.png").stat().st_size > 10_000
    assert Path(out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
