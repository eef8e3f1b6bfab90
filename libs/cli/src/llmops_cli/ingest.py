"""``llmops ingest PATH... --collection C``: files into a retriever collection, with a progress bar.

Each file is one document, uploaded as it is; the retriever extracts its text, chunks and embeds it. A
document's id is its path relative to the folder it was found in (``/`` written as ``:``), or its name when
given as a file, so ingesting the same files again replaces their documents instead of adding copies.
"""

import json
import mimetypes
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from llmops_cli.client import AdminClient, fail

console = Console(stderr=True)
SUPPORTED = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"}  # what the retriever extracts

RetrieverUrl = Annotated[
    str | None,
    typer.Option("--retriever-url", envvar="LLMOPS_RETRIEVER_URL", show_default="http://127.0.0.1:8001"),
]


def collect(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, document id) for every supported file named or found under a named folder."""
    found: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED):
                found.setdefault(file.relative_to(path).as_posix().replace("/", ":"), file)
        elif path.is_file():
            found.setdefault(path.name, path)
        else:
            fail(f"no such file or folder: {path}")
    return [(file, doc_id) for doc_id, file in found.items()]


def parse_metadata(items: list[str]) -> dict:
    metadata = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--metadata expects KEY=VALUE, got {item!r}")
        try:
            metadata[key] = json.loads(value)  # numbers and booleans stay typed, so range filters work
        except json.JSONDecodeError:
            metadata[key] = value
    return metadata


def ensure_collection(client: AdminClient, name: str, *, hybrid: bool) -> None:
    response = client._send("GET", f"/v1/collections/{name}")  # a 404 here is an answer, not a failure
    if response.status_code == 404:
        client.post("/v1/collections", {"name": name, "hybrid": hybrid})
        console.print(f"created collection {escape(name)}" + (" (hybrid)" if hybrid else ""))
    elif response.status_code >= 400:
        client.get(f"/v1/collections/{name}")  # reports the error and exits


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files, or folders searched for .txt .md .html .pdf files.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection to ingest into.")],
    create: Annotated[bool, typer.Option(help="Create the collection if it does not exist.")] = True,
    hybrid: Annotated[bool, typer.Option(help="A collection created here also gets BM25 (hybrid search).")] = False,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", "-m", metavar="KEY=VALUE", help="Metadata for every file (repeatable)."),
    ] = None,
    retriever_url: RetrieverUrl = None,
) -> None:
    """Ingest files into a retriever collection: each file becomes one document, replacing an earlier version."""
    files = collect(paths)
    if not files:
        fail(f"no {', '.join(sorted(SUPPORTED))} files found")
    meta = json.dumps(parse_metadata(metadata or [])) if metadata else None
    client = AdminClient(retriever_url, service="retriever", timeout_s=600)  # a large PDF takes a while to embed
    if create:
        ensure_collection(client, collection, hybrid=hybrid)
    results, failures = [], []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("ingesting", total=sum(f.stat().st_size for f, _ in files))
        for done, (file, doc_id) in enumerate(files):
            progress.update(task, description=f"[{done + 1}/{len(files)}] {escape(file.name)}")
            params = {"filename": file.name, "document_id": doc_id, **({"metadata": meta} if meta else {})}
            content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            response = client._send(  # per-file errors are collected, not fatal
                "POST",
                f"/v1/collections/{collection}/files",
                params=params,
                content=file.read_bytes(),
                headers={"content-type": content_type},
            )
            if response.status_code == 200:
                document = response.json()["documents"][0]
                results.append((doc_id, document["chunks"], document["removed_chunks"]))
            else:
                failures.append((doc_id, _error(response)))
                if response.status_code in (401, 404):  # every other file would fail the same way
                    break
            progress.advance(task, file.stat().st_size)
    _report(collection, results, failures)
    if failures:
        raise typer.Exit(1)


def _error(response) -> str:
    try:
        return f"{response.status_code}: {response.json()['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:200]}"


def _report(collection: str, results: list, failures: list) -> None:
    table = Table(title=f"Ingested into {collection}")
    for column in ("document", "chunks", "old chunks removed"):
        table.add_column(column, justify="left" if column == "document" else "right")
    for doc_id, chunks, removed in results:
        table.add_row(escape(doc_id), str(chunks), str(removed))
    for doc_id, message in failures:
        table.add_row(f"[red]{escape(doc_id)}[/red]", "-", escape(message))
    console.print(table)
    total = sum(chunks for _, chunks, _ in results)
    # A plain line on stdout for scripts.
    print(f"{len(results)} documents, {total} chunks ingested into {collection}; {len(failures)} failed")
