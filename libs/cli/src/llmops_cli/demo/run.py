"""``llmops demo``: the closed loop on the running platform, with simulated users.

1. A route to the base model, a key for the users, the bundled documents ingested, a retraining policy.
2. Users ask invented-fact questions the base model cannot know (and a few general ones it can) and rate each
   answer by a transparent rule: thumbs up when it contains the expected fact, else thumbs down with the correct
   answer as a correction. With ``--sabotage`` they "correct" everything to a wrong answer instead.
3. The retraining policy fires on that feedback: a LoRA job trains ``<route>@challenger``; once it is served, an
   experiment opens at 50%.
4. New users ask held-out phrasings (never in the training data) and rate honestly; the controller decides.
5. A report: Markdown and a PNG of the thumbs-up rate per arm over time with the decisions marked.
"""

import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.defaults import inference_variant
from llmops_cli.demo import report, timeline
from llmops_cli.demo.items import Item, demo_items, documents, rate
from llmops_cli.demo.platform import Services

Log = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    facts: int  # invented facts asked (the general questions come on top)
    collect_rounds: int  # times each item is asked (in another phrasing) before training
    concurrency: int  # questions in flight at once
    min_ratings_per_arm: int
    experiment_timeout_s: float
    job: dict  # the trainer job's training and lora settings
    max_tokens: int = 40


# Measured on 2 CPU cores with the fast set: rank 8 on q/v learnt 4 of 10 held-out questions, rank 16 on every
# projection 10 of 10 (36 steps, about 2 minutes with registration). On the full set 6 epochs learnt 22 of 24
# held-out questions in about 3 minutes against 12 epochs' 6.5 minutes (training alone). On the fast set (20 lines,
# 3 steps an epoch) 6 epochs learnt 10 of 10 as well, 4 epochs 7 of 10 (the trainer's loop, then greedy answers to
# the held-out phrasings rated by the demo's rule); through vLLM the 6-epoch adapter answered 89-92% of the held-out
# questions right, 12 epochs 100%: --fast trains 8, two thirds of the steps of 12, for margin. No held-out eval
# split: every line is a fact.
LORA = {"r": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


def _job(epochs: int) -> dict:
    return {"lora": LORA, "training": {"epochs": epochs, "learning_rate": 2e-3, "batch_size": 8, "eval_fraction": 0}}


FULL = Plan(facts=24, collect_rounds=2, concurrency=4, min_ratings_per_arm=40,
            experiment_timeout_s=600.0, job=_job(6))  # fmt: skip
# --fast asks a whole round (its 10 items) at once, which vLLM decodes as one batch: on 2 busy CPU cores a round of
# held-out questions took 19 to 24 s so, against 20 to 32 s four at a time.
# Every rating was accepted before the wait starts, and a rating held for its request's record is attached within
# seconds of the record landing: a policy still short of examples after this long has stalled.
JOB_START_S = 300.0

FAST = Plan(facts=8, collect_rounds=2, concurrency=10, min_ratings_per_arm=16,
            experiment_timeout_s=300.0, job=_job(8))  # fmt: skip


class Demo:
    def __init__(self, services: Services, plan: Plan, *, sabotage: bool, log: Log, progress: Log) -> None:
        """``log``: a line for the record; ``progress``: the current state of a long step (overwritten)."""
        self.s, self.plan, self.sabotage, self.log, self.progress = services, plan, sabotage, log, progress
        self.route = f"demo-{secrets.token_hex(3)}"
        self.items = demo_items(plan.facts)
        self.events: list[dict] = []
        self.answers: list[dict] = []  # every rated answer, for the report's examples
        self.job_id: str | None = None  # the training job the demo waits for
        self.started, self.wall_started = time.monotonic(), time.time()

    def event(self, kind: str, **fields) -> None:
        self.events.append({"t": round(time.monotonic() - self.started, 2), "kind": kind, **fields})

    # --- 1. set-up ---

    def set_up(self) -> None:
        collection = "demo-facts"
        if self.s.admin["retriever"].get(f"/v1/collections/{collection}").status_code == 404:
            self.s.call("retriever", "POST", "/v1/collections", json={"name": collection})
        docs = documents()
        self.s.call("retriever", "POST", f"/v1/collections/{collection}/documents", json={"documents": docs})
        self.log(f"ingested {len(docs)} documents about invented facts into collection {collection}")
        base = self.s.base_model()
        variant = inference_variant("base", inference_url=self.s.urls["inference"], model=base)
        self.s.call("gateway", "PUT", f"/admin/routes/{self.route}", json={"variants": [variant], "sticky": True})
        self.key = self.s.call("gateway", "POST", "/admin/keys", json={"name": f"{self.route}-users"})["key"]
        examples = len(self.items) * self.plan.collect_rounds
        policy = {
            "model_name": self.route,
            "champion": "base",
            "min_examples": examples,
            "cooldown_s": 0,
            "job": self.plan.job,
            "experiment": {
                "steps": [0.5],
                "min_ratings_per_arm": self.plan.min_ratings_per_arm,
                "min_detectable_effect": 0.3,
                "max_duration_s": self.plan.experiment_timeout_s,
                "min_exposures_for_guardrails": 5,
            },
        }
        self.s.call("feedback", "PUT", f"/v1/retraining/{self.route}", json=policy)
        self.log(f"route {self.route} -> {base}; retraining policy: a job after {examples} examples")

    # --- asking and rating ---

    def ask_and_rate(self, client, item: Item, question: str, user: str, *, phase: str, saboteur: bool) -> dict:
        body = {"model": self.route, "messages": [{"role": "user", "content": question}], "user": user}
        response = client.post(
            "/v1/chat/completions", json=body | {"max_tokens": self.plan.max_tokens, "temperature": 0}
        )
        if response.status_code != 200:  # e.g. an adapter reloading after a promotion: counted, not fatal
            self.event("error", phase=phase, status=response.status_code)
            return {"phase": phase, "error": response.status_code}
        answer = response.json()["choices"][0]["message"]["content"] or ""
        verdict, correction = rate(item, answer, saboteur=saboteur)
        request_id, arm = response.headers["x-request-id"], response.headers.get("x-llmops-variant", "?")
        feedback = {"request_id": request_id, "rating": verdict} | ({"correction": correction} if correction else {})
        client.post("/v1/feedback", json=feedback).raise_for_status()  # accepted as soon as the answer ends
        self.event("rating", phase=phase, arm=arm, rating=verdict)
        result = {
            "phase": phase,
            "arm": arm,
            "item": item.id,
            "question": question,
            "answer": answer,
            "rating": verdict,
        }
        self.answers.append(result)
        return result

    def ask_all(self, jobs: list[tuple[Item, str, str]], *, phase: str, saboteur: bool) -> list[dict]:
        with self.s.user_client(self.key) as client, ThreadPoolExecutor(self.plan.concurrency) as pool:
            futures = [
                pool.submit(self.ask_and_rate, client, item, q, user, phase=phase, saboteur=saboteur)
                for item, q, user in jobs
            ]
            return [f.result() for f in futures]

    # --- 2. feedback ---

    def collect_feedback(self) -> None:
        jobs = [
            (item, item.training_questions[r % len(item.training_questions)], f"early-user-{i % 7}")
            for r in range(self.plan.collect_rounds)
            for i, item in enumerate(self.items)
        ]
        self.log(
            f"{len(jobs)} questions from early users" + (" (saboteurs: wrong corrections)" if self.sabotage else "")
        )
        results = [r for r in self.ask_all(jobs, phase="collect", saboteur=self.sabotage) if "rating" in r]
        ups = sum(r["rating"] == "up" for r in results)
        self.log(f"  base model: {ups}/{len(results)} thumbs up")

    # --- 3. retraining ---

    def wait_for_canary(self, timeout_s: float = 1500.0, job_start_s: float = JOB_START_S) -> str:
        """The experiment's id once the policy's job trained an adapter and it is canaried. Fails with the policy's
        status when no job starts within ``job_start_s`` (a stalled loop says why at once, e.g. "waiting: 19 new
        training examples of 20") or nothing opens within ``timeout_s``."""
        started = time.monotonic()
        deadline, job_id, last = started + timeout_s, None, None
        watch = timeline.JobWatch(self.wall_started)
        while time.monotonic() < deadline:
            policy = self.s.call("feedback", "GET", f"/v1/retraining/{self.route}")
            if policy["job_id"] and job_id is None:
                job_id = self.job_id = policy["job_id"]
                self.event("job_started", job_id=job_id, examples=policy["dataset_examples"])
            if not job_id:
                self.progress(policy["status"])
                if time.monotonic() - started > job_start_s:
                    raise RuntimeError(f"no training job within {job_start_s:.0f} s: {policy['status']}")
            else:
                job = self.s.call("trainer", "GET", f"/jobs/{job_id}")
                state, progress = job["state"], job["progress"]
                if state != last:  # each state once; the steps go to the progress line
                    self.log(f"  training job {job_id}: {state}")
                    last = state
                self.progress(f"step {progress.get('step') or 0}/{progress.get('total_steps') or '?'}")
                if job["state"] in ("failed", "cancelled"):
                    raise RuntimeError(f"the training job {job['state']}: {job.get('error')}")
                self._phases(watch, job)
            if policy["experiment_id"]:
                self.event("experiment_started", experiment_id=policy["experiment_id"], job_id=job_id)
                self.log(f"  {timeline.describe(self.events[-1])}: {policy['status']}")
                return policy["experiment_id"]
            time.sleep(timeline.POLL_S)
        raise RuntimeError(f"no experiment opened within {timeout_s:.0f} s: {policy['status']}")

    def _retire_policy(self) -> None:
        """The demo's policy has done its work. Left in place, the canary's own ratings would start another job; and
        the loop does start one by itself right after a decision (the next cycle, against the new champion): such a
        job is cancelled too. Left running, a platform stopped after the demo hands it to its next start, whose
        trainer finishes it first (measured: a --sabotage run after a full one waited 251 s for that job)."""
        feedback = self.s.admin["feedback"]
        policy = feedback.get(f"/v1/retraining/{self.route}")
        feedback.delete(f"/v1/retraining/{self.route}")  # no job can start after this
        later = policy.json().get("job_id") if policy.status_code == 200 else None
        if later and later != self.job_id:
            self.s.admin["trainer"].delete(f"/jobs/{later}")  # 409 if it already ended: nothing left to stop
            self.log(f"  cancelled job {later}, started by the policy's next cycle after the decision")

    def _phases(self, watch: timeline.JobWatch, job: dict) -> None:
        """Logs and records the job's phases seen for the first time (the report's breakdown of this wait)."""
        served = "adapter_served" in watch.seen or (
            job["state"] == "succeeded" and job.get("served_model") in self.s.served_models()
        )
        for phase in watch.observe(job, t=time.monotonic() - self.started, served=served):
            self.events.append(phase)
            self.log(f"  {timeline.describe(phase)}")

    # --- 4. the canary ---

    def run_canary(self, experiment_id: str) -> dict:
        deadline, seen, round_ = time.monotonic() + self.plan.experiment_timeout_s, 0, 0
        while True:
            experiment = self.s.call("feedback", "GET", f"/v1/experiments/{experiment_id}")
            for decision in experiment["decisions"][seen:]:
                self.event("decision", action=decision["action"], reason=decision["reason"], actor=decision["actor"])
            seen = len(experiment["decisions"])
            arms = ", ".join(
                f"{a['variant']} {a['thumbs_up']}/{a['ratings']} up" for a in experiment["readout"]["arms"]
            )
            self.log(f"  experiment {experiment_id}: {experiment['status']}; {arms}")
            if experiment["status"] != "running" or time.monotonic() > deadline:
                return experiment
            # A new user for every question: sticky routing keeps a user on one arm, so each question from a new
            # user is a fresh draw of the split (the sample-ratio check counts users; the readout counts answers).
            jobs = [(item, item.held_out_question, f"canary-user-{round_}-{i}") for i, item in enumerate(self.items)]
            self.ask_all(jobs, phase="canary", saboteur=False)
            round_ += 1

    def run(self, out: Path) -> dict:
        self.set_up()
        try:
            self.collect_feedback()
            experiment_id = self.wait_for_canary()
            experiment = self.run_canary(experiment_id)
        finally:
            self._retire_policy()
        summary = {
            "route": self.route,
            "mode": "sabotage" if self.sabotage else "honest",
            "outcome": experiment["status"],
            "experiment": experiment,
            "items": len(self.items),
            "seconds": round(time.monotonic() - self.started, 1),
        }
        paths = report.write(out, events=self.events, answers=self.answers, summary=summary)
        return summary | {"report": str(paths[0]), "plot": str(paths[1])}
