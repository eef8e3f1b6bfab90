"""``llmops apply|diff|export``: the platform's routes, keys' limits and retraining policies as one YAML file."""

import difflib
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from llmops_cli.client import AdminClient, GatewayUrl, err_console, fail
from llmops_cli.feedback import FeedbackUrl
from llmops_cli.platform.plan import Change, Plan, Platform
from llmops_cli.platform.schema import API_VERSION, PlatformFile, parse
from llmops_cli.platform.yamlfile import FileError, dump, load

console = Console(highlight=False)

PlatformPath = Annotated[
    Path, typer.Option("--file", "-f", exists=True, dir_okay=False, help="The platform file (YAML).")
]
Prune = Annotated[bool, typer.Option("--prune", help="Also delete routes and retraining policies the file leaves out.")]

_SIGNS = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red")}


def _load(path: Path, gateway_url: str | None, feedback_url: str | None) -> tuple:
    try:
        doc = load(path)
        pf = parse(doc)
    except FileError as exc:
        fail(str(exc))
    feedback = AdminClient(feedback_url, service="feedback") if pf.retraining is not None else None
    return doc, pf, Platform(AdminClient(gateway_url), feedback)


def _render(change: Change) -> None:
    sign, colour = _SIGNS[change.action]
    console.print(f"[{colour}]{sign} {change.kind} {escape(change.name)} ({change.action})[/{colour}]")
    before = dump(change.before).splitlines() if change.before else []
    after = dump(change.after).splitlines() if change.after else []
    for line in list(difflib.unified_diff(before, after, lineterm="", n=2))[2:]:  # no ---/+++ header
        if line.startswith("@@") and change.action != "update":
            continue  # all of it is new (or gone): no hunk to locate
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
        console.print(f"    [{style}]{escape(line)}[/{style}]")


def _plan(platform: Platform, pf: PlatformFile, doc, *, prune: bool, apply: bool) -> Plan:
    try:
        return platform.apply(pf, doc, prune=prune) if apply else platform.plan(pf, doc, prune=prune)
    except FileError as exc:
        fail(str(exc))


def diff(
    file: PlatformPath,
    prune: Prune = False,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 2 when there are changes (for CI).")] = False,
    gateway_url: GatewayUrl = None,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Show what `llmops apply -f FILE` would change: each object created, updated or deleted, field by field."""
    doc, pf, platform = _load(file, gateway_url, feedback_url)
    plan = _plan(platform, pf, doc, prune=prune, apply=False)
    for change in plan.changes:
        _render(change)
    console.print(f"{len(plan.changes)} change(s)" if plan.changes else "no changes: the platform matches the file")
    if exit_code and plan.changes:
        raise typer.Exit(2)


def apply(
    file: PlatformPath,
    prune: Prune = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show the changes; make none.")] = False,
    gateway_url: GatewayUrl = None,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Make the platform match the file. Everything is validated first; a bad file changes nothing."""
    doc, pf, platform = _load(file, gateway_url, feedback_url)
    plan = _plan(platform, pf, doc, prune=prune, apply=not dry_run)
    for change in plan.changes:
        if dry_run:
            _render(change)  # as `llmops diff` shows it
        else:
            sign, colour = _SIGNS[change.action]
            console.print(f"[{colour}]{sign} {change.kind} {escape(change.name)}[/{colour}]")
    done = "would change" if dry_run else "changed"
    console.print(f"{len(plan.changes)} object(s) {done}" if plan.changes else "no changes: the platform matches")


def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
    retraining: Annotated[
        bool, typer.Option("--retraining/--no-retraining", help="Include the feedback service's policies.")
    ] = True,
    gateway_url: GatewayUrl = None,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Write the platform's current state as a file that `llmops apply` takes back without a change."""
    state = AdminClient(gateway_url).get("/admin/config")
    document: dict = {"apiVersion": API_VERSION, "routes": state["routes"], "keys": state["keys"]}
    if retraining:
        document["retraining"] = AdminClient(feedback_url, service="feedback").get("/v1/config/retraining")["policies"]
    if state["unmanaged_keys"]:  # a file names keys; these names do not tell one key
        err_console.print(f"left out (several live keys share each name): {escape(', '.join(state['unmanaged_keys']))}")
    text = f"# llmops platform file (llmops export); apply with: llmops apply -f FILE\n{dump(document)}"
    if output is None:
        print(text, end="")
    else:
        output.write_text(text)
        console.print(f"wrote {output}")


def promote(
    name: Annotated[str, typer.Argument(help="The registered model (or, with --prompt, the prompt).")],
    source: Annotated[str, typer.Option("--from", help="Source environment: a name or an MLflow URL.")],
    target: Annotated[str, typer.Option("--to", help="Target environment: a name or an MLflow URL.")],
    alias: Annotated[
        str, typer.Option(help="The alias promoted: read in the source, moved in the target.")
    ] = "champion",
    version: Annotated[str | None, typer.Option(help="Promote this source version instead of the alias's.")] = None,
    prompt: Annotated[bool, typer.Option("--prompt", help="NAME is a prompt of the prompt registry.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Even when the target serves a newer version.")] = False,
) -> None:
    """Copy a model (or prompt) version from one environment's MLflow to another's and move the alias there.

    Refused when the target's alias already points at a newer version (same origin registry: a higher version
    number; otherwise a later creation time)."""
    # A wrong URL fails in seconds, not after MLflow's default minutes of retries (unless the caller chose).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from mlflow.exceptions import MlflowException  # mlflow: imported only when used

    from llmops_cli.platform import environments
    from llmops_cli.platform import promote as promotion

    try:
        source_url, target_url = environments.mlflow_url(source), environments.mlflow_url(target)
    except ValueError as exc:
        fail(str(exc))
    run = promotion.promote_prompt if prompt else promotion.promote_model
    try:
        result = run(name, source=source_url, target=target_url, alias=alias, version=version, force=force)
    except promotion.PromotionError as exc:
        fail(str(exc))
    except MlflowException as exc:
        fail(f"MLflow: {exc.message}")
    kind = "prompt" if prompt else "model"
    if result.target_version is None:
        console.print(f"{target} already serves {kind} {name} version {result.source_version} of {source} at @{alias}")
    else:
        console.print(
            f"{kind} {name}: {source} version {result.source_version} -> {target} version "
            f"{result.target_version}, @{alias} moved"
        )
