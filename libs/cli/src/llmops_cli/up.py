"""``llmops up``: run the whole platform locally as supervised processes until Ctrl-C or SIGTERM."""

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli import prompt_registry
from llmops_cli.defaults import ensure_default_route, ensure_judge_key
from llmops_cli.infra import find_or_start_redis
from llmops_cli.procs import port_in_use
from llmops_cli.services import PlatformContext, platform_services, resolve_ports
from llmops_cli.state import load_secrets, state_dir
from llmops_cli.supervisor import ServiceSpec, StartupError, Supervisor, is_ready

console = Console(stderr=True)


def _install_stop_handlers(stop: threading.Event) -> None:
    # Ctrl-C, SIGTERM (systemd, docker, kill) and a closed terminal all mean: shut down in order, exit 0.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())


def up(
    port: Annotated[
        list[str] | None,
        typer.Option(
            "--port",
            metavar="NAME=PORT",
            help="Override a service's port, e.g. --port gateway=8100 (repeatable; env LLMOPS_<NAME>_PORT works too).",
        ),
    ] = None,
) -> None:
    """Start every platform service locally, wait until all are ready, keep them running until Ctrl-C."""
    try:
        ports = resolve_ports(port)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    busy = [f"{name} ({p})" for name, p in ports.items() if port_in_use(p)]
    if busy:
        console.print(
            f"[red]error:[/red] port in use: {', '.join(busy)}. Is the platform already running? "
            "Choose other ports with --port NAME=PORT."
        )
        raise typer.Exit(1)

    stop = threading.Event()
    _install_stop_handlers(stop)
    state = state_dir()
    secrets = load_secrets(state)
    with console.status("Finding Redis (or starting a private one)..."):
        try:
            redis = find_or_start_redis(state, die_with_parent=True)
        except RuntimeError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None
    console.print(f"Redis: {redis.url}" + (" (private, stopped on exit)" if redis.process else ""))

    ctx = PlatformContext(state=state, secrets=secrets, redis_url=redis.url, ports=ports)
    specs = platform_services(ctx)
    supervisor = Supervisor(specs, log_dir=state / "logs", stop=stop, on_event=lambda msg: console.print(escape(msg)))
    exit_code = 0
    background = ThreadPoolExecutor(1, thread_name_prefix="llmops-up")
    try:
        supervisor.start_all()
        # The built-in prompts need only MLflow, ready long before vLLM: registered while vLLM starts, not after.
        prompts = background.submit(_seed_prompts, next(s for s in specs if s.name == "mlflow"), stop)
        with console.status("Starting services...") as status:
            ready = supervisor.wait_ready(lambda names: status.update(f"Waiting for {', '.join(names)} to be ready..."))
        if ready:
            _register_default_route(ctx)
            console.print(prompts.result())
            _ensure_judge_key(ctx, supervisor)
            _print_ready(specs, state, secrets.path)
            supervisor.watch()
        console.print("Stopping...")
    except StartupError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        exit_code = 1
    finally:
        stop.set()  # also ends a prompt registration still waiting for MLflow
        background.shutdown()
        supervisor.stop_all()
        redis.stop()
    if exit_code:
        raise typer.Exit(exit_code)
    console.print("All services stopped.")


def _register_default_route(ctx: PlatformContext) -> None:
    """The default route to the bundled model; a failure is reported, not fatal (the platform is up)."""
    try:
        message = ensure_default_route(
            gateway_url=f"http://127.0.0.1:{ctx.ports['gateway']}",
            inference_url=f"http://127.0.0.1:{ctx.ports['inference']}",
            admin_token=ctx.secrets.admin_token,
            serving_token=ctx.secrets.serving_token,
        )
    except (httpx.HTTPError, StopIteration, KeyError, ValueError) as exc:
        message = f"[yellow]warning:[/yellow] could not create the default route: {escape(repr(exc))}"
    console.print(message)


def _seed_prompts(mlflow: ServiceSpec, stop: threading.Event) -> str:
    """The built-in RAG templates as registered prompts (no new version when their text is unchanged), once MLflow
    answers; what happened, for the console. A failure is reported, not fatal."""
    while not is_ready(mlflow.url + mlflow.ready_path):
        if stop.wait(0.25):
            return "Built-in prompts: not registered (stopped before MLflow was ready)"
    try:
        return f"Built-in prompts: {escape(', '.join(prompt_registry.seed_builtins(mlflow.url)))}"
    except Exception as exc:  # noqa: BLE001 - MLflow's client raises many kinds; the platform is up regardless
        return f"[yellow]warning:[/yellow] could not register the built-in prompts: {escape(repr(exc))}"


def _ensure_judge_key(ctx: PlatformContext, supervisor: Supervisor) -> None:
    """A gateway key for the evaluation workers' judge, unless FEEDBACK_EVAL_JUDGE_KEY gives one. Only the gateway
    can make a key, so on the first start the workers began without it and are restarted once with it."""
    if os.environ.get("FEEDBACK_EVAL_JUDGE_KEY"):
        return
    try:
        secrets, message = ensure_judge_key(
            gateway_url=f"http://127.0.0.1:{ctx.ports['gateway']}", admin_token=ctx.secrets.admin_token,
            state=ctx.state, secrets=ctx.secrets,
        )  # fmt: skip
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        console.print(f"[yellow]warning:[/yellow] no judge key, judge rubrics will fail: {escape(repr(exc))}")
        return
    console.print(message)
    if secrets.judge_key != ctx.secrets.judge_key:
        supervisor.restart("evaluation_worker", env={"FEEDBACK_EVAL_JUDGE_KEY": secrets.judge_key})


def _print_ready(specs, state, secrets_path) -> None:
    table = Table(title="LLMOps platform")
    for column in ("service", "URL", "log"):
        table.add_column(column)
    for spec in specs:
        table.add_row(spec.name, spec.url, str(state / "logs" / f"{spec.name}.log"))
    console.print(table)
    gateway = next((spec for spec in specs if spec.name == "gateway"), None)
    if gateway is not None:
        console.print(f"Web console: {gateway.url}/console/ (sign in with LLMOPS_ADMIN_TOKEN from {secrets_path})")
    urls = ", ".join(f"{spec.name} {spec.url}" for spec in specs)
    # A plain, unwrapped line on stdout that scripts and tests wait for.
    print(f"LLMOps platform ready: {urls} (admin token in {secrets_path})", flush=True)
