"""Running a service's app in production: ``python -m llmops_<service>`` calls ``serve``.

Why not the bare ``uvicorn`` command: the access log alone costs about as much as the rest of a proxied
request (each service logs and counts its requests itself), and several worker processes need Prometheus's
multiprocess mode set up before any worker starts.
"""

import argparse
import os
import shutil
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path

import uvicorn

from llmops_common.settings import ServiceSettings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def multiprocess_metrics():
    """Points prometheus_client at a fresh directory shared by the workers (before they import it).

    Files left by an earlier run would add its counts to ours, so a given directory is emptied first;
    one made here is removed at the end.
    """
    given = os.environ.get(MULTIPROC_ENV)
    directory = Path(given or tempfile.mkdtemp(prefix="llmops-metrics-"))
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield directory
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)


def parse_args(settings: ServiceSettings, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--workers", type=int, default=settings.workers, help="worker processes (default: settings)")
    return parser.parse_args()


def serve(app_factory: str, settings: ServiceSettings, *, description: str, http=None) -> None:
    """Runs ``app_factory`` (``module:function``) with uvicorn on uvloop; ``http``: uvicorn's ``http`` setting;
    by default httptools with a deadline on each request's head (``header_timeout_s``)."""
    if http is None:
        # Imported here: it imports uvicorn's protocols and httptools, which only a running server needs.
        from llmops_common.header_timeout import http_protocol

        http = http_protocol(settings.header_timeout_s)
    args = parse_args(settings, description)
    several = args.workers > 1 or bool(os.environ.get(MULTIPROC_ENV))
    with multiprocess_metrics() if several else nullcontext():
        _run(app_factory, settings, args, http)


def _run(app_factory: str, settings: ServiceSettings, args: argparse.Namespace, http) -> None:
    uvicorn.run(
        app_factory,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=http,
        access_log=False,
        log_level=settings.log_level.lower(),
        # Seconds an idle keep-alive connection stays open: above the usual load balancer idle timeout (60 s),
        # so the balancer, not the gateway, closes it and never sends on a connection being closed.
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
        backlog=2048,
        # Services sit behind a load balancer or each other. uvicorn's X-Forwarded-For rewriting (a middleware
        # around every request, trusting a fixed list of proxies) is left out; the one reader of the client's address,
        # the console's sign-in limit, names its header itself (GATEWAY_CONSOLE_CLIENT_IP_HEADER).
        proxy_headers=False,
    )
