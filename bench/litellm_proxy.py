"""LiteLLM's proxy as a reference for the gateway benchmark: the gateway users would most often pick instead.

It is installed by the benchmark, never by ``make install``, into its own virtual environment
(bench/.venvs/litellm, ``pip install 'litellm[proxy]'`` from PyPI), once: a stamp file names the installed
spec. Configured as a user would run it in front of one OpenAI-compatible server: a model name mapped to the
fake upstream (``api_base``), no database, a master key (it refuses to start without one), message and spend
logging off, one worker. Where it cannot be installed (no network), its rows are left out with a note.
"""

import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.procs import free_port

VENV = Path(__file__).parent / ".venvs" / "litellm"
SPEC = "litellm[proxy]"
INSTALL_TIMEOUT_S = 1200

CONFIG = """
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{upstream_model}
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: none
litellm_settings:
  turn_off_message_logging: true
  telemetry: false
general_settings:
  master_key: {master_key}
  disable_spend_logs: true
  disable_error_logs: true
"""


@dataclass
class Installed:
    executable: Path
    version: str
    install_s: float | None  # None: found installed


def ensure_installed(spec: str = SPEC) -> Installed | None:
    """LiteLLM in its own virtual environment, installed if missing; None (with a printed note) if it cannot be."""
    stamp, executable = VENV / ".installed", VENV / "bin" / "litellm"
    if executable.exists() and stamp.exists() and stamp.read_text() == spec:
        return Installed(executable, _version(), None)
    print(f"installing {spec} into {VENV} (once) ...", flush=True)
    started = time.perf_counter()
    python = VENV / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "--quiet", spec],
    ]
    for argv in steps:
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"note: LiteLLM left out: {' '.join(argv[-2:])} took over {INSTALL_TIMEOUT_S} s", flush=True)
            return None
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "ERROR" in line] or done.stderr.splitlines()
            print(f"note: LiteLLM left out: {' '.join(argv[-2:])} failed: {errors[-1:] or done.returncode}", flush=True)
            return None
    stamp.write_text(spec)
    install_s = round(time.perf_counter() - started, 1)
    print(f"  installed in {install_s} s", flush=True)
    return Installed(executable, _version(), install_s)


def _version() -> str:
    python = VENV / "bin" / "python"
    probe = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


def command(
    installed: Installed, tmp: Path, upstream_port: int, *, model: str, upstream_model: str = "m"
) -> tuple[int, list[str], dict[str, str], str]:
    """The port it will listen on, its command line and environment, and the master key clients send."""
    port, conf, master_key = free_port(), tmp / "litellm.yaml", f"sk-bench-{secrets.token_hex(16)}"
    conf.write_text(
        CONFIG.format(model=model, upstream_model=upstream_model, upstream_port=upstream_port, master_key=master_key)
    )
    argv = [str(installed.executable), "--config", str(conf), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else it fetches the price list from GitHub at start
    }
    return port, argv, env, master_key
