"""Several worker processes behind one port (``GATEWAY_WORKERS``): one gateway to clients and to Prometheus."""

import concurrent.futures
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmops_testkit.gateway import chat_body, variant

REQUESTS = 60


@pytest.fixture(scope="module")
def two_workers(make_gateway, llmops_state_dir):
    gateway = make_gateway(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'workers.db'}", GATEWAY_WORKERS="2")
    yield gateway
    gateway.stop()


def requests_counted(gateway, route: str) -> float:
    with httpx.Client(base_url=gateway.url) as scraper:  # a new connection: any worker may answer
        text = scraper.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "llmops_gateway_requests_total" and sample.labels.get("route") == route
    )


def test_requests_spread_over_workers_and_metrics_add_up(two_workers, upstreams):
    route = two_workers.put_route(variants=[variant("a", upstreams["alpha"])])
    _, key = two_workers.create_key(limits={"rpm": 10_000})

    def one(_: int) -> int:
        with two_workers.client(key) as client:  # a connection each, so the kernel spreads them over the workers
            return client.post("/v1/chat/completions", json=chat_body(route)).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(REQUESTS))) == [200] * REQUESTS
    # Whichever worker answers the scrape, it reports every worker's counts (Prometheus's multiprocess files).
    assert [requests_counted(two_workers, route) for _ in range(6)] == [REQUESTS] * 6


def test_sigterm_stops_every_worker(make_gateway, llmops_state_dir):
    gateway = make_gateway(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'workers-stop.db'}", GATEWAY_WORKERS="2")
    supervisor = gateway.replicas[0].process
    workers = [int(pid) for pid in Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()]
    assert len([pid for pid in workers if _is_python(pid)]) >= 2
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(15) == 0
    # A helper process (multiprocessing's resource tracker) notices its parent's exit a moment later.
    deadline = time.monotonic() + 5
    while [pid for pid in workers if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if _alive(pid)]


def _is_python(pid: int) -> bool:
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
