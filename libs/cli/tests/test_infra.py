"""Real Redis and PostgreSQL: found where running, else private instances from Debian's binaries."""

import asyncio
import os
import socket
import time

import pytest

from llmops_cli.infra import find_or_start_postgres, find_or_start_redis, postgres_accepts, redis_ping
from llmops_cli.procs import free_port


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("@")[-1].split("//")[-1].split("/")[0]
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(autouse=True)
def _no_env_urls(monkeypatch):
    monkeypatch.delenv("LLMOPS_REDIS_URL", raising=False)
    monkeypatch.delenv("LLMOPS_POSTGRES_URL", raising=False)


def test_redis_env_url_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_REDIS_URL", "redis://example:1/2")
    handle = find_or_start_redis(tmp_path)
    assert (handle.url, handle.process) == ("redis://example:1/2", None)
    handle.stop()  # nothing of ours to stop: a no-op


def test_find_or_start_redis_gives_a_url_that_answers_ping(tmp_path):
    handle = find_or_start_redis(tmp_path)
    try:
        assert redis_ping(*_host_port(handle.url))
    finally:
        handle.stop()


def test_private_redis_starts_answers_and_stops(tmp_path):
    nothing_there = free_port()
    handle = find_or_start_redis(tmp_path, shared_port=nothing_there)
    assert handle.process is not None
    host, port = _host_port(handle.url)
    assert port != nothing_there and redis_ping(host, port)
    assert (tmp_path / "redis").is_dir()
    pid = handle.process.pid
    handle.stop()
    assert _closed(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_postgres_env_url_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_POSTGRES_URL", "postgresql://u:p@db:5432/x")
    handle = find_or_start_postgres(tmp_path)
    assert handle.url == "postgresql://u:p@db:5432/x"
    assert handle.async_url == "postgresql+asyncpg://u:p@db:5432/x"


def test_postgres_probe_refuses_a_non_postgres_port():
    assert not postgres_accepts("127.0.0.1", free_port())


def test_private_postgres_starts_serves_queries_and_stops(tmp_path):
    asyncpg = pytest.importorskip("asyncpg")
    started = time.monotonic()
    handle = find_or_start_postgres(tmp_path, shared_port=free_port())
    try:
        assert handle.process is not None
        assert time.monotonic() - started < 60

        async def query() -> int:
            conn = await asyncpg.connect(handle.url)
            try:
                return await conn.fetchval("select 40 + 2")
            finally:
                await conn.close()

        assert asyncio.run(query()) == 42
        assert handle.async_url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
    finally:
        _, port = _host_port(handle.url)
        handle.stop()
    assert _closed(port)
