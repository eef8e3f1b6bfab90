"""``llmops prompts push|list|show|alias``: system prompts and RAG templates in MLflow's prompt registry.

Templates use MLflow's double braces and only ``{{sources}}`` and ``{{question}}`` (see
``llmops_common.contracts.prompts``); a route names one as ``prompts:/<name>@<alias>`` or ``prompts:/<name>/<version>``.
"""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli import prompt_registry
from llmops_cli.client import fail

app = typer.Typer(help="Push, list, show and alias prompts in MLflow's prompt registry.", no_args_is_help=True)
console = Console()

MlflowUrl = Annotated[
    str | None,
    typer.Option(
        "--mlflow-url", envvar="LLMOPS_MLFLOW_URL", show_default="http://127.0.0.1:5000", help="MLflow's tracking URL."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _mlflow(url: str | None):
    return prompt_registry.client(url)


def _run(call):
    """MLflow's errors as one line and exit 1."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        fail(exc.message)
    except (ValueError, TypeError) as exc:
        fail(str(exc))


def _read(template: str | None, file: Path | None) -> str | list:
    if (template is None) == (file is None):
        fail("give the template with --template TEXT or --file PATH (one of them)")
    text = template if template is not None else file.read_text()
    if file is not None and file.suffix == ".json":  # a chat template: [{"role": ..., "content": ...}, ...]
        try:
            return json.loads(text)
        except ValueError as exc:
            fail(f"{file}: not valid JSON ({exc})")
    return text


def _version_dict(version) -> dict:
    return {
        "name": version.name,
        "version": str(version.version),
        "aliases": sorted(version.aliases or []),
        "template": version.template,
        "message": version.commit_message,
        "uri": f"prompts:/{version.name}/{version.version}",
    }


@app.command()
def push(
    name: Annotated[str, typer.Argument(help="The prompt's name in the registry.")],
    template: Annotated[str | None, typer.Option("--template", help="The template text.")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", exists=True, dir_okay=False, help="A text template, or a .json chat template."),
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="What changed.")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Point this alias at the pushed version.")] = None,
    as_json: AsJson = False,
    mlflow_url: MlflowUrl = None,
) -> None:
    """Validate a template and register it as a new version (none when the text equals the latest)."""
    body = _read(template, file)
    mlflow = _mlflow(mlflow_url)
    version, created = _run(lambda: prompt_registry.push(mlflow, name, body, message=message))
    if alias:
        _run(lambda: mlflow.set_prompt_alias(name, alias, int(version.version)))
    if as_json:
        print(json.dumps({"name": name, "version": str(version.version), "created": created, "alias": alias}))
        return
    what = "registered" if created else "unchanged: the latest version has this text"
    console.print(f"prompts:/{escape(name)}/{version.version} {what}" + (f"; {escape(alias)} -> it" if alias else ""))


@app.command("list")
def list_prompts(as_json: AsJson = False, mlflow_url: MlflowUrl = None) -> None:
    """Registered prompts with their latest version and aliases."""
    mlflow = _mlflow(mlflow_url)
    rows = []
    for found in _run(lambda: mlflow.search_prompts(max_results=1000)):
        versions = _run(lambda name=found.name: prompt_registry.versions(mlflow, name, aliases=True))
        aliases = sorted(f"{a}->{v.version}" for v in versions for a in v.aliases or [])
        rows.append({"name": found.name, "latest": str(versions[0].version) if versions else None, "aliases": aliases})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table()
    table.add_column("prompt", overflow="fold")
    table.add_column("latest", justify="right")
    table.add_column("aliases", overflow="fold")
    for row in rows:
        table.add_row(escape(row["name"]), row["latest"] or "-", escape(", ".join(row["aliases"])))
    console.print(table)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME (every version), or prompts:/NAME@ALIAS or prompts:/NAME/VERSION.")],
    as_json: AsJson = False,
    mlflow_url: MlflowUrl = None,
) -> None:
    """A prompt's versions, or the version a reference resolves to, with its template."""
    mlflow = _mlflow(mlflow_url)
    if ref.startswith("prompts:/"):
        name, number, _ = _run(lambda: prompt_registry.resolve(mlflow, ref))
        found = [_run(lambda: mlflow.get_prompt_version(name, number))]
    else:
        found = _run(lambda: prompt_registry.versions(mlflow, ref, aliases=True))
        if not found:
            fail(f"no prompt named {ref!r}")
    rows = [_version_dict(v) for v in found]
    if as_json:
        print(json.dumps(rows if len(rows) > 1 or not ref.startswith("prompts:/") else rows[0], indent=2))
        return
    for row in rows:
        aliases = f" ({', '.join(row['aliases'])})" if row["aliases"] else ""
        console.print(f"[bold]{escape(row['uri'])}[/bold]{escape(aliases)}  {escape(row['message'] or '')}")
        text = row["template"]
        if isinstance(text, list):
            text = "\n".join(f"[{m['role']}] {m['content']}" for m in text)
        console.print(escape(text), soft_wrap=False)


@app.command()
def alias(
    name: Annotated[str, typer.Argument(help="The prompt.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production")],
    version: Annotated[int | None, typer.Argument(help="The version it points to; leave out with --delete.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    mlflow_url: MlflowUrl = None,
) -> None:
    """Point an alias at a version (routes that name it follow within the gateway's prompt cache TTL)."""
    mlflow = _mlflow(mlflow_url)
    if delete:
        _run(lambda: mlflow.delete_prompt_alias(name, alias_name))
        console.print(f"Alias {escape(alias_name)} of {escape(name)} removed.")
        return
    if version is None:
        fail("give the VERSION the alias points to (or --delete)")
    _run(lambda: mlflow.set_prompt_alias(name, alias_name, version))
    console.print(f"prompts:/{escape(name)}@{escape(alias_name)} -> version {version}")
