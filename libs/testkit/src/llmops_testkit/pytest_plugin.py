"""Fixtures on real infrastructure, for every test directory of the project.

Redis and PostgreSQL are the machine's own where they run (CI), or private instances started
from Debian's binaries where they do not (a fresh laptop).
"""

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from llmops_cli.infra import find_or_start_postgres, find_or_start_redis, start_private_postgres
from llmops_testkit.backends import create_database, drop_database
from llmops_testkit.fake_upstream import FakeUpstream
from llmops_testkit.feedback import Feedback, feedback_env, new_tokens
from llmops_testkit.gateway import Gateway, gateway_env, new_secrets
from llmops_testkit.inference import InferenceService, inference_env, prepare_bundled_model
from llmops_testkit.mlflow_server import MlflowServer
from llmops_testkit.otlp import OtlpReceiver
from llmops_testkit.processes import stop_together
from llmops_testkit.retriever import Retriever, retriever_env
from llmops_testkit.retriever import new_tokens as new_retriever_tokens
from llmops_testkit.scheduling import (  # noqa: F401 - hooks of this plugin
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_xdist_make_scheduler,
)
from llmops_testkit.tcp_proxy import TcpProxy


@pytest.fixture(scope="session")
def llmops_state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("llmops")


@pytest.fixture(scope="session")
def redis_url(llmops_state_dir):
    handle = find_or_start_redis(llmops_state_dir / "infra", die_with_parent=True)
    yield handle.url
    handle.stop()


@pytest.fixture(scope="session")
def postgres_server(llmops_state_dir):
    handle = find_or_start_postgres(llmops_state_dir / "infra", die_with_parent=True)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def postgres_database_url(postgres_server):
    """A fresh database on the PostgreSQL server, as a SQLAlchemy asyncpg URL; dropped at the end."""
    name = asyncio.run(create_database(postgres_server.url))
    base = postgres_server.async_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(drop_database(postgres_server.url, name))


PRIVATE_POSTGRES_START_S = 20.0  # a private cluster slower than this to start is not worth the suite's time


@pytest.fixture(scope="session")
def private_postgres(llmops_state_dir):
    """A PostgreSQL cluster of the session's own on a free port, for tests that stop and start it
    (``PostgresHandle.restart``): the shared server, which every other test uses, is never touched. One initdb per
    session; each test takes a database of its own on it (``private_postgres_url``). Skipped where none starts."""
    started = time.monotonic()
    try:
        server = start_private_postgres(
            llmops_state_dir / "pg-private", die_with_parent=True, timeout_s=PRIVATE_POSTGRES_START_S
        )
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        pytest.skip(f"no private PostgreSQL here: {exc}")
    if time.monotonic() - started > PRIVATE_POSTGRES_START_S:
        server.stop()
        pytest.skip(f"a private PostgreSQL took over {PRIVATE_POSTGRES_START_S:.0f} s to start")
    yield server
    server.stop()


@pytest.fixture
def private_postgres_url(private_postgres):
    """A fresh database on ``private_postgres``, as a SQLAlchemy asyncpg URL; dropped at the end."""
    name = asyncio.run(create_database(private_postgres.url))
    yield f"{private_postgres.async_url.rsplit('/', 1)[0]}/{name}"
    try:
        asyncio.run(drop_database(private_postgres.url, name))
    except (OSError, asyncpg.PostgresError):
        pass  # a test that failed with the server down: the cluster goes at the session's end anyway


@pytest.fixture
def postgres_proxy(postgres_server):
    """A ``TcpProxy`` in front of the shared PostgreSQL server, for tests that cut a service off it by
    ``blackhole()``: only the proxy goes silent, the server and every other test's connections are untouched."""
    server = urlsplit(postgres_server.url)
    if server.hostname is None:
        pytest.skip("PostgreSQL on a Unix socket: no TCP to put a proxy in")
    proxy = TcpProxy(server.hostname, server.port or 5432).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxied_postgres_url(postgres_server, postgres_proxy):
    """A fresh database on the shared server (dropped at the end), as a SQLAlchemy asyncpg URL through
    ``postgres_proxy``."""
    name = asyncio.run(create_database(postgres_server.url))
    server = urlsplit(postgres_server.async_url)
    credentials, at, _ = server.netloc.rpartition("@")
    yield server._replace(netloc=f"{credentials}{at}127.0.0.1:{postgres_proxy.port}", path=f"/{name}").geturl()
    asyncio.run(drop_database(postgres_server.url, name))


@pytest.fixture(params=["sqlite", "postgres"])
def empty_sql_url(request, llmops_state_dir):
    """An empty database of its own on each SQL backend (dropped at the end), for a test that migrates it up and
    down: the shared ``sql_url`` databases stay at the newest schema for every other test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{llmops_state_dir / f'empty-{uuid.uuid4().hex[:6]}.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = asyncio.run(create_database(server.url))
    yield f"{server.async_url.rsplit('/', 1)[0]}/{name}"
    asyncio.run(drop_database(server.url, name))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def sql_url(request, llmops_state_dir):
    """Each test that uses it runs on both SQL backends."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{llmops_state_dir / f'gateway-{uuid.uuid4().hex[:6]}.db'}"
    return request.getfixturevalue("postgres_database_url")


@pytest.fixture(scope="session")
def _fake_upstreams():
    upstreams = {name: FakeUpstream(name).start() for name in ("alpha", "beta", "gamma")}
    yield upstreams
    for upstream in upstreams.values():
        upstream.stop()


@pytest.fixture
def upstreams(_fake_upstreams):
    """Three fake OpenAI upstreams, reset before each test."""
    for upstream in _fake_upstreams.values():
        upstream.reset()
    return _fake_upstreams


def _gateways(state_dir: Path, redis_url: str):
    """A gateway factory and what it started: gateways on one Redis, each on the database it is given."""
    started: list[Gateway] = []

    def make(
        *, sql_url: str, replicas: int = 1, module: str = "llmops_gateway", start: bool = True, **overrides: str
    ) -> Gateway:
        gateway_dir = state_dir / f"gw-{uuid.uuid4().hex[:6]}"
        overrides.setdefault("GATEWAY_SPOOL_DIR", str(gateway_dir / "spool"))
        admin_token, key_secret = new_secrets()
        env = gateway_env(
            sql_url=sql_url, redis_url=redis_url, state_dir=gateway_dir, admin_token=admin_token, key_secret=key_secret
        )
        env.update(overrides)
        gateway = Gateway(env=env, state_dir=gateway_dir, replicas=replicas, module=module)
        started.append(gateway)
        return gateway.start() if start else gateway

    return make, started


# Processes a test module starts stop when the module ends: an idle gateway or feedback service still runs its
# background loops, and dozens of them left to the session's end slowed the whole suite down. Session fixtures
# (shared by many modules) use the session factories. Every factory takes ``start=False``: the service is made (and
# stopped with the others) but not started, for ``processes.start_together`` with others.
@pytest.fixture(scope="module")
def make_gateway(llmops_state_dir, redis_url):
    """Starts gateways (one or more replicas on one database and Redis); stopped at the end of the module."""
    make, started = _gateways(llmops_state_dir, redis_url)
    yield make
    stop_all(started)


@pytest.fixture(scope="session")
def make_session_gateway(llmops_state_dir, redis_url):
    """Like ``make_gateway``, for session fixtures: stopped at the end of the session."""
    make, started = _gateways(llmops_state_dir, redis_url)
    yield make
    stop_all(started)


@pytest.fixture(scope="session")
def gateway(make_session_gateway, sql_url) -> Gateway:
    """The shared gateway of a test session, once per SQL backend."""
    return make_session_gateway(sql_url=sql_url)


@pytest.fixture(scope="module")
def otlp_receiver():
    """A real OTLP/HTTP receiver on loopback; ``otlp_receiver.env()`` points a service's exporter at it."""
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def mlflow_server(llmops_state_dir) -> MlflowServer:
    """A real MLflow tracking server (SQLite store, local artifacts) for the whole session."""
    server = MlflowServer(llmops_state_dir / "mlflow").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_proxy(mlflow_server) -> TcpProxy:
    """A ``TcpProxy`` in front of ``mlflow_server`` for the session's services (``inference_service``, the trainer):
    a test takes the registry away from them with ``down()`` and gives it back with ``restore()`` at once, where
    stopping and restarting MLflow costs its 15 s start. Their URL for it: ``f"http://127.0.0.1:{proxy.port}"``."""
    proxy = TcpProxy("127.0.0.1", mlflow_server.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def inference_service(llmops_state_dir, mlflow_proxy) -> InferenceService:
    """The inference service with a real vLLM (CPU build here) on the bundled model, syncing adapters from
    ``mlflow_server`` (through ``mlflow_proxy``). One per session: vLLM takes about a minute to start on 2 cores."""
    prepare_bundled_model()
    state_dir = llmops_state_dir / "inference"
    env = inference_env(
        state_dir=state_dir, admin_token=new_secrets()[0], mlflow_uri=f"http://127.0.0.1:{mlflow_proxy.port}"
    )
    service = InferenceService(env=env, state_dir=state_dir).start()
    yield service
    service.stop()


def _feedback_services(state_dir: Path):
    started: list[Feedback] = []

    def make(*, sql_url: str, start: bool = True, **overrides: str) -> Feedback:
        admin_token, ingest_token = new_tokens()
        env = {**feedback_env(sql_url=sql_url, admin_token=admin_token, ingest_token=ingest_token), **overrides}
        service = Feedback(env=env, state_dir=state_dir / f"fb-{uuid.uuid4().hex[:6]}")
        started.append(service)
        return service.start() if start else service

    return make, started


@pytest.fixture(scope="module")
def make_feedback(llmops_state_dir):
    """Starts feedback services (on a given SQL URL, with settings overrides); stopped at the end of the module."""
    make, started = _feedback_services(llmops_state_dir)
    yield make
    stop_all(started)


@pytest.fixture(scope="session")
def make_session_feedback(llmops_state_dir):
    """Like ``make_feedback``, for session fixtures: stopped at the end of the session."""
    make, started = _feedback_services(llmops_state_dir)
    yield make
    stop_all(started)


def _retrievers(state_dir: Path):
    started: list[Retriever] = []

    def make(*, store: str = "edge", start: bool = True, **overrides: str) -> Retriever:
        admin_token, read_token = new_retriever_tokens()
        service_dir = state_dir / f"retriever-{store}-{uuid.uuid4().hex[:6]}"
        env = retriever_env(
            store=store, state_dir=service_dir, admin_token=admin_token, read_token=read_token, **overrides
        )
        retriever = Retriever(env=env, state_dir=service_dir)
        started.append(retriever)
        return retriever.start() if start else retriever

    return make, started


@pytest.fixture(scope="module")
def make_retriever(llmops_state_dir):
    """Starts retrievers (real embeddings; ``store`` "edge", the default, or "qdrant" in memory, with settings
    overrides); stopped at the end of the module."""
    make, started = _retrievers(llmops_state_dir)
    yield make
    stop_all(started)


@pytest.fixture(scope="session")
def make_session_retriever(llmops_state_dir):
    """Like ``make_retriever``, for session fixtures: stopped at the end of the session."""
    make, started = _retrievers(llmops_state_dir)
    yield make
    stop_all(started)


def stop_all(services) -> None:
    stop_together(*services)


@pytest.fixture(scope="session")
def feedback_sql_url(request, llmops_state_dir, sql_url):
    """A database of its own for the feedback service, on the same backend as ``sql_url``."""
    if sql_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{llmops_state_dir / f'feedback-{uuid.uuid4().hex[:6]}.db'}"
    server = request.getfixturevalue("postgres_server")
    name = asyncio.run(create_database(server.url))
    request.addfinalizer(lambda: asyncio.run(drop_database(server.url, name)))
    return f"{server.async_url.rsplit('/', 1)[0]}/{name}"


@pytest.fixture(scope="session")
def feedback(make_session_feedback, feedback_sql_url) -> Feedback:
    """The shared feedback service of a test session, once per SQL backend."""
    return make_session_feedback(sql_url=feedback_sql_url)
