"""Where the retraining phase's time goes: the training job's phases as the trainer's API gives them (submitted,
taken by a worker, its training steps, finished with the adapter registered), when inference first served the
adapter, and when the experiment opened; as demo events, and as the report's table.

The trainer's timestamps (``created_at``, ``started_at``, ``finished_at``) are exact, on the trainer's clock (the
platform runs on the demo's machine). Steps are known only as the job's progress at each of the demo's polls (the
worker writes it at every heartbeat), so the first and the last step are placed within a poll of when they ended;
likewise the adapter being served (inference's model list, polled once the job succeeded).
"""

from datetime import datetime

# How often the demo polls the job while it waits: the steps' and the serving's times are known to within this. Each
# poll is three small reads (the policy, the job, inference's model list), nothing next to a training step.
POLL_S = 0.5

# Each phase's event kind and what it means, in the order they happen.
PHASES = {
    "job_submitted": "the retraining policy submitted the job (queued)",
    "job_running": "a training worker took it (loads the base model and the data)",
    "first_step": "training under way",
    "last_step": "training steps all done",
    "job_succeeded": "the job finished: the adapter saved and registered",
    "adapter_served": "inference served the adapter",
    "experiment_started": "the controller opened the experiment",
}


class JobWatch:
    """Turns each poll of the job into the phase events it shows for the first time."""

    def __init__(self, wall_started: float) -> None:
        self.wall_started = wall_started  # time.time() when the demo's clock (its events' ``t``) read 0
        self.seen: set[str] = set()

    def _at(self, timestamp: str) -> float:
        """A trainer timestamp on the demo's clock."""
        return round(datetime.fromisoformat(timestamp).timestamp() - self.wall_started, 2)

    def observe(self, job: dict, *, t: float, served: bool = False) -> list[dict]:
        """The phases this poll of ``job`` (taken at ``t``) shows first; ``served``: inference lists the adapter."""
        found: list[dict] = []

        def phase(kind: str, at: float, **fields) -> None:
            if kind not in self.seen:
                self.seen.add(kind)
                found.append({"t": at, "kind": kind, **fields})

        phase("job_submitted", self._at(job["created_at"]), job_id=job["id"])
        if job.get("started_at"):
            phase("job_running", self._at(job["started_at"]), attempt=job.get("attempt", 1))
        step, total = job["progress"].get("step") or 0, job["progress"].get("total_steps")
        finished = self._at(job["finished_at"]) if job.get("finished_at") else None
        if step >= 1:  # a job that finished between two polls did its first step before it finished
            phase("first_step", min(t, finished or t), step=step, total_steps=total)
        if (total and step >= total) or job["state"] == "succeeded":
            phase("last_step", min(t, finished or t), step=step, total_steps=total)
        if job["state"] == "succeeded":
            phase("job_succeeded", finished or t, version=job.get("registered_version"))
        if served:
            phase("adapter_served", t, model=job.get("served_model"))
        return found


def _text(event: dict) -> str:
    text = PHASES[event["kind"]]
    if event["kind"] in ("first_step", "last_step") and event.get("total_steps"):
        text += f" (step {event['step']} of {event['total_steps']})"
    if event["kind"] == "job_succeeded" and event.get("version"):
        text += f", version {event['version']}"
    return text


def describe(event: dict) -> str:
    """One line for the live log."""
    return f"{event['t']:.0f} s: {_text(event)}"


def report_lines(events: list[dict]) -> list[str]:
    """The report's table: each phase, when it happened and how long it took since the one before; and the
    training steps' pace. Empty when no job was seen."""
    phases = [e for e in events if e["kind"] in PHASES]
    if not any(e["kind"] == "job_submitted" for e in phases):
        return []
    phases.sort(key=lambda e: (e["t"], list(PHASES).index(e["kind"])))
    lines = ["| phase | at (s) | since the previous (s) |", "|---|---|---|"]
    previous = None
    for event in phases:
        since = "-" if previous is None else f"{event['t'] - previous:.0f}"
        lines.append(f"| {_text(event)} | {event['t']:.0f} | {since} |")
        previous = event["t"]
    by_kind = {e["kind"]: e for e in phases}
    first, last = by_kind.get("first_step"), by_kind.get("last_step")
    if first and last and last["step"] > first["step"]:
        pace = (last["t"] - first["t"]) / (last["step"] - first["step"])
        span = last["t"] - first["t"]
        pace_line = f"Training steps {first['step']} to {last['step']}: {span:.0f} s, about {pace:.1f} s a step"
        lines += ["", pace_line + f" (seen at the demo's polls, every {POLL_S:g} s)."]
    return lines
