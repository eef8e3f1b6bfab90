"""The soak's training: a small LoRA job through the trainer API every so often, on the ratings given since the
previous one (the feedback service's SFT export), each job followed to its end and its outcome recorded."""

import asyncio
import time
from datetime import datetime

import httpx

from llmops_testkit.trainer import FINISHED, Trainer

MODEL_NAME = "soak-adapter"
POLL_S = 1.0
WAITING_LINE_S = 10.0  # a progress line this often while jobs are awaited after the traffic


class Training:
    def __init__(
        self,
        trainer: Trainer,
        *,
        started: float,
        started_at: datetime,
        steps: int,
        first_s: float,
        every_s: float,
        timeout_s: float,
    ) -> None:
        """``started`` (perf_counter) and ``started_at`` (wall clock, aware) are the soak's start."""
        self.trainer, self.started, self.started_at = trainer, started, started_at
        self.steps, self.first_s, self.every_s, self.timeout_s = steps, first_s, every_s, timeout_s
        self.jobs: list[dict] = []  # one record per submission, updated as the job goes

    def describe(self) -> str:
        if not self.jobs:
            return "none yet"
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job["state"]] = counts.get(job["state"], 0) + 1
        running = [f"step {j['step']}/{j['total_steps'] or '?'}" for j in self.jobs if j["state"] == "running"]
        return ", ".join(f"{n} {state}" for state, n in counts.items()) + (
            f" ({'; '.join(running)})" if running else ""
        )

    async def loop(self, until: float) -> None:
        """Submits jobs until the traffic ends, then awaits them (``timeout_s`` at most, then cancels them)."""
        headers = {"authorization": f"Bearer {self.trainer.admin_token}"}
        async with httpx.AsyncClient(base_url=self.trainer.url, headers=headers, timeout=60) as client:
            watchers, since, at = [], self.started_at, self.started + self.first_s
            while at < until:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                submitted_at = datetime.now(self.started_at.tzinfo)
                watchers.append(asyncio.create_task(self.submit_and_follow(client, since, until)))
                since, at = submitted_at, at + self.every_s
            await asyncio.gather(*watchers)

    async def submit_and_follow(self, client: httpx.AsyncClient, since: datetime, until: float) -> None:
        record = {"submitted_s": round(time.perf_counter() - self.started, 1), "state": "submitting"}
        self.jobs.append(record)
        body = {
            "dataset": {"feedback": {"since": since.isoformat()}},
            "registry": {"model_name": MODEL_NAME},
            "training": {"max_steps": self.steps, "max_seq_length": 96, "batch_size": 4},
        }
        try:
            response = await client.post("/jobs", json=body)
        except httpx.HTTPError as exc:
            record.update(state="not submitted", error=repr(exc))
            return
        if response.status_code != 201:
            record.update(state="rejected", status=response.status_code, error=response.text[:300])
            return
        job = response.json()
        record.update(id=job["id"], examples=job["dataset"].get("examples"), poll_errors=0)
        self.update(record, job)
        deadline, last_line = until + self.timeout_s, 0.0
        while job["state"] not in FINISHED:
            now = time.perf_counter()
            if now > deadline:
                record["timed_out"] = True
                try:  # leave no work behind
                    job = (await client.delete(f"/jobs/{job['id']}")).raise_for_status().json()
                except httpx.HTTPError:
                    pass
                break
            if now > until and now - last_line > WAITING_LINE_S:
                print(f"[{now - self.started:5.0f}s] traffic over; awaiting job {job['id']}: {record['state']} "
                      f"step {record['step']}/{record['total_steps'] or '?'}", flush=True)  # fmt: skip
                last_line = now
            await asyncio.sleep(POLL_S)
            try:
                job = (await client.get(f"/jobs/{job['id']}")).raise_for_status().json()
            except httpx.HTTPError:
                record["poll_errors"] += 1
                continue
            self.update(record, job)
        self.update(record, job)

    def update(self, record: dict, job: dict) -> None:
        """The record from the job's latest state: times relative to the soak's start, progress, outcome."""

        def since_start(field: str) -> float | None:
            value = job.get(field)
            return round((datetime.fromisoformat(value) - self.started_at).total_seconds(), 1) if value else None

        progress = job["progress"]
        record.update(
            state=job["state"],
            attempt=job["attempt"],
            step=progress["step"],
            total_steps=progress["total_steps"],
            loss=progress["loss"],
            started_s=since_start("started_at"),
            finished_s=since_start("finished_at"),
            registered_version=job["registered_version"],
            error=job["error"],
        )
        if record["started_s"] is not None:
            record["queued_s"] = round(record["started_s"] - record["submitted_s"], 1)
        if record["finished_s"] is not None:
            record["duration_s"] = round(record["finished_s"] - record["submitted_s"], 1)
