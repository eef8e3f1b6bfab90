"""The feedback service is down and the request-log spool's disk is full: the gateway keeps serving, and counts
(``llmops_gateway_request_log_lost``) and logs the records it could not keep.

The spool lives on a 64 KiB tmpfs where the test may mount one (root); otherwise on a read-only directory (which
refuses writes the same way, with an OSError, to anyone but root).
"""

import os
import subprocess
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmops_testkit.gateway import chat_body, variant


@pytest.fixture
def full_spool_dir(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(spool)]
    mounted = subprocess.run(mount, check=False, capture_output=True).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root without the right to mount a tmpfs: no way to make a directory refuse writes")
        (spool / "rejected").mkdir()  # what the sink prepares at start
        spool.chmod(0o555)
    yield spool, mounted
    if mounted:
        subprocess.run(["umount", "-l", str(spool)], check=False)
    else:
        spool.chmod(0o755)


def lost(gateway) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{gateway.url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "llmops_gateway_request_log_lost_total":
                return sample.value
    return 0.0


def test_a_full_spool_loses_records_but_not_requests(make_gateway, llmops_state_dir, upstreams, full_spool_dir):
    spool, mounted = full_spool_dir
    gateway = make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'spool-{uuid.uuid4().hex[:6]}.db'}",
        GATEWAY_REQUEST_LOG_SINK="feedback",
        GATEWAY_FEEDBACK_URL="http://127.0.0.1:9",  # nothing listens: every batch goes to the spool
        GATEWAY_FEEDBACK_TOKEN="t",
        GATEWAY_SPOOL_DIR=str(spool),
    )
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    big = "x" * 16_000  # four requests' records fill the tmpfs
    with gateway.client(gateway.create_key()[1]) as client:
        statuses = [client.post("/v1/chat/completions", json=chat_body(route, big)).status_code for _ in range(12)]
    assert statuses == [200] * 12
    for _ in range(50):  # the sink writes in the background (a batch lingers 50 ms): poll the counter briefly
        if lost(gateway) > 0:
            break
        time.sleep(0.1)
    assert lost(gateway) > 0
    assert "request records lost" in gateway.logs()
    if mounted:  # no half-written temporary file holds on to the space left
        assert not list(spool.glob(".*.tmp"))
    with gateway.client(gateway.create_key()[1]) as client:  # still serving
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
