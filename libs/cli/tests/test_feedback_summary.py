"""``llmops feedback summary`` in an 80-column terminal: every header and value whole, names wrapped rather than cut.

The CLI runs as a process (as a user runs it; rich takes the width from ``COLUMNS``) against a stand-in for the
feedback service's ``/v1/quality`` that really listens on loopback.
"""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

LONG_VARIANT = "challenger-lora-rank8-from-the-march-dataset-v12"

QUALITY = {
    "since": "2026-01-01T00:00:00Z",
    "until": "2026-01-02T00:00:00Z",
    "variants": [
        {
            "route": "support-chat",
            "variant": "champion",
            "requests": 123_456,
            "rated": 4_567,
            "up": 4_000,
            "down": 567,
            "up_rate": 0.8758,
            "up_rate_low": 0.8661,
            "up_rate_high": 0.8851,
            "avg_latency_ms": 1234.5,
            "avg_ttft_ms": 300.0,
            "prompt_tokens": 12_345_678,
            "completion_tokens": 2_345_678,
        },
        {
            "route": "support-chat",
            "variant": LONG_VARIANT,
            "requests": 2_345_678,
            "rated": 0,
            "up": 0,
            "down": 0,
            "up_rate": None,
            "up_rate_low": None,
            "up_rate_high": None,
            "avg_latency_ms": None,
            "avg_ttft_ms": None,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        },
        {
            "route": "docs-qa/rag",
            "variant": "base",
            "requests": 42,
            "rated": 42,
            "up": 42,
            "down": 0,
            "up_rate": 1.0,
            "up_rate_low": 0.9162,
            "up_rate_high": 1.0,
            "avg_latency_ms": 23456.0,
            "avg_ttft_ms": 900.0,
            "prompt_tokens": 9_000,
            "completion_tokens": 1_000,
        },
    ],
}
ROUTES = ("support-chat", "docs-qa/rag")
HEADERS = ["route / variant", "reqs", "up", "down", "up rate", "95% CI", "latency"]
# Each row's values as the table shows them.
ROWS = {
    "champion": ["123,456", "4,000", "567", "88%", "87–89%", "1234 ms"],
    LONG_VARIANT: ["2.3M", "0", "0", "-", "-", "-"],
    "base": ["42", "42", "0", "100%", "92–100%", "23.5 s"],
}


class FakeFeedback(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        data = json.dumps(QUALITY).encode()
        self.send_response(200 if self.path.startswith("/v1/quality") else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def feedback_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeFeedback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def summary(feedback_url: str, *args: str, columns: int) -> str:
    env = {**os.environ, "COLUMNS": str(columns), "LLMOPS_FEEDBACK_URL": feedback_url, "LLMOPS_ADMIN_TOKEN": "t"}
    env.pop("LINES", None)
    result = subprocess.run(
        [sys.executable, "-m", "llmops_cli.main", "feedback", "summary", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def name_cell(lines: list[str], start: int) -> str:
    """A wrapped name: its first piece opens the row, the rest fill the next lines alone."""
    pieces = [lines[start].split()[0]]
    for line in lines[start + 1 :]:
        words = line.split()
        if len(words) != 1 or words[0] in ROWS or words[0] in ROUTES:
            break
        pieces.append(words[0])
    return "".join(pieces)


def test_the_summary_is_readable_at_80_columns(feedback_url):
    out = summary(feedback_url, columns=80)
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    assert "…" not in out, out  # nothing was cut to a stub
    header = next(line for line in lines if "reqs" in line)
    for name in HEADERS:
        assert name in header, (name, out)
    for route in ROUTES:
        assert any(line.split() == [route] for line in lines), out  # each route heads its own rows
    for variant, values in ROWS.items():
        start = next(i for i, line in enumerate(lines) if line.split() and variant.startswith(line.split()[0]))
        assert name_cell(lines, start) == variant, out  # wrapped, never cut
        assert lines[start].split()[1:] == [v for value in values for v in value.split()], (variant, out)


def test_a_wide_terminal_also_shows_tokens(feedback_url):
    out = summary(feedback_url, columns=120)
    assert "tokens in/out" in out and "12.3M/2.3M" in out and "9,000/1,000" in out
    assert LONG_VARIANT in out


def test_json_keeps_every_field(feedback_url):
    assert json.loads(summary(feedback_url, "--json", columns=80)) == QUALITY
