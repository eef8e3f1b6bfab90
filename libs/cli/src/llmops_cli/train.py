"""``llmops train``: submit a LoRA fine-tuning job to the trainer and follow it with a progress bar."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from llmops_cli.client import AdminClient, fail
from llmops_cli.keys import parse_duration

console = Console(stderr=True)
FINISHED = ("succeeded", "failed", "cancelled")

TrainerUrl = Annotated[
    str | None,
    typer.Option("--trainer-url", envvar="LLMOPS_TRAINER_URL", show_default="http://127.0.0.1:8003"),
]


def _dataset(dataset: str, *, route: str | None, variant: str | None, since: str | None) -> dict:
    if dataset == "feedback":
        query = {"route": route, "variant": variant}
        if since:
            query["since"] = (datetime.now(UTC) - timedelta(seconds=parse_duration(since))).isoformat()
        return {"feedback": {k: v for k, v in query.items() if v is not None}}
    if route or variant or since:
        raise typer.BadParameter("--route, --variant and --since only apply to --dataset feedback")
    path = Path(dataset)
    if not path.is_file():
        raise typer.BadParameter(f"{dataset} is not a file (or 'feedback')", param_hint="--dataset")
    try:
        return {"jsonl": path.read_text(encoding="utf-8")}
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text")


def _line(job: dict) -> str:
    progress = job["progress"]
    parts = [job["state"]]
    if progress["loss"] is not None:
        parts.append(f"loss {progress['loss']:.4f}")
    if progress["eval_loss"] is not None:
        parts.append(f"eval {progress['eval_loss']:.4f}")
    if progress["eta_s"] is not None:
        parts.append(f"eta {progress['eta_s']:.0f}s")
    if job["state"] == "queued" and job["error"]:
        parts.append(job["error"][:80])  # why it waits again: a lost worker or a transient failure
    return escape(" · ".join(parts))


def follow(client: AdminClient, job_id: str, *, poll_s: float = 1.0) -> dict:
    """Polls the job until it ends, with a progress bar of its steps. Ctrl-C stops following, not the job."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[line]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("train", total=None, line="queued")
            while True:
                job = client.get(f"/jobs/{job_id}")
                progress = job["progress"]
                bar.update(task, total=progress["total_steps"], completed=progress["step"], line=_line(job))
                if job["state"] in FINISHED:
                    return job
                time.sleep(poll_s)
    except KeyboardInterrupt:
        console.print(
            f"Stopped following; {job_id} goes on. Follow it again with `llmops train --follow {job_id}`, "
            f"cancel it with `llmops train --cancel {job_id}`."
        )
        raise typer.Exit(130) from None


def _report(job: dict) -> None:
    if job["state"] == "succeeded":
        served = f", served as {job['served_model']}" if job["served_model"] else ""
        console.print(
            f"[green]succeeded[/green]: {escape(job['model_name'])} version {job['registered_version']}"
            f"{escape(served)} (MLflow run {job['mlflow_run_id']})"
        )
        print(job["served_model"] or f"{job['model_name']}/{job['registered_version']}")  # for scripts
        return
    reason = f": {job['error']}" if job["error"] else ""
    console.print(f"[red]{job['state']}[/red]{escape(reason)}")
    raise typer.Exit(1)


def train(
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="A chat-format JSONL file, or 'feedback' for the feedback service's SFT export."
        ),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="The registered model in MLflow; served as <model-name>@<alias>.")
    ] = None,
    alias: Annotated[str, typer.Option(help="The alias the new version gets ('' for none).")] = "challenger",
    route: Annotated[str | None, typer.Option(help="Feedback dataset: only this route.")] = None,
    variant: Annotated[str | None, typer.Option(help="Feedback dataset: only this variant.")] = None,
    since: Annotated[str | None, typer.Option(help="Feedback dataset: how far back (7d, 12h ...).")] = None,
    base_model: Annotated[str | None, typer.Option(help="Default: the bundled model.")] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps (instead of --epochs).")] = None,
    epochs: Annotated[float | None, typer.Option(min=0.01, help="Passes over the data (default 1).")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Default 2e-4.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    max_seq_length: Annotated[int | None, typer.Option(min=16)] = None,
    seed: Annotated[int | None, typer.Option(min=0)] = None,
    rank: Annotated[int | None, typer.Option("--rank", "-r", min=1, help="LoRA rank (default 8).")] = None,
    lora_alpha: Annotated[int | None, typer.Option(min=1, help="Default 2 × rank.")] = None,
    lora_dropout: Annotated[float | None, typer.Option(min=0.0, max=0.99)] = None,
    target_module: Annotated[
        list[str] | None, typer.Option(help="A module to adapt (repeatable; default q_proj and v_proj).")
    ] = None,
    follow_job: Annotated[str | None, typer.Option("--follow", help="Follow an existing job instead.")] = None,
    cancel_job: Annotated[str | None, typer.Option("--cancel", help="Cancel a job instead.")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Submit, print the job id, do not follow.")] = False,
    trainer_url: TrainerUrl = None,
) -> None:
    """Fine-tune the base model with LoRA on a dataset; the adapter is registered in MLflow and served by alias."""
    client = AdminClient(trainer_url, service="trainer", timeout_s=120)
    if cancel_job:
        job = client.delete(f"/jobs/{cancel_job}")
        console.print(f"{cancel_job}: {job['state']}" + (" (cancel requested)" if job["state"] == "running" else ""))
        return
    if follow_job:
        _report(follow(client, follow_job))
        return
    if not dataset or not model_name:
        raise typer.BadParameter("--dataset and --model-name are required to submit a job")
    lora = {"r": rank, "alpha": lora_alpha, "dropout": lora_dropout, "target_modules": target_module or None}
    training = {
        "max_steps": max_steps,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_seq_length": max_seq_length,
        "seed": seed,
    }
    body = {
        "base_model": base_model,
        "dataset": _dataset(dataset, route=route, variant=variant, since=since),
        "lora": {k: v for k, v in lora.items() if v is not None},
        "training": {k: v for k, v in training.items() if v is not None},
        "registry": {"model_name": model_name, "alias": alias or None},
    }
    job = client.post("/jobs", {k: v for k, v in body.items() if v is not None})
    info = job["dataset"]
    console.print(
        f"Submitted {job['id']}: {info['examples']} examples (sha256 {info['sha256'][:12]}…, "
        f"{info['duplicates']} duplicates dropped, {info['scrubbed']} scrubbed)"
    )
    if detach:
        print(job["id"])
        return
    _report(follow(client, job["id"]))
