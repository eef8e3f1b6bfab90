"""An evaluation worker: ``python -m llmops_feedback.evaluation.worker`` (settings from ``FEEDBACK_*``).

A Celery worker on the evaluation queue. Judging waits on the gateway, not the CPU, so the pool is threads
(``FEEDBACK_EVAL_WORKER_CONCURRENCY``) sharing one event loop that holds the SQL engine and the gateway client.
Health and metrics on ``FEEDBACK_EVAL_WORKER_HOST:PORT`` (the shared worker health server, as the trainer's).
"""

import asyncio
import logging
import os
import socket
import sys
import threading

import httpx
from celery import Celery, signals
from prometheus_client import Counter

from llmops_common import sql
from llmops_common.logging import configure_logging
from llmops_feedback.evaluation import comparisons, rubrics
from llmops_feedback.evaluation.embeddings import Similarity
from llmops_feedback.evaluation.health import health_server
from llmops_feedback.evaluation.judge import JudgeError
from llmops_feedback.evaluation.queue import COMPARE_TASK, EVALUATE_TASK, make_celery
from llmops_feedback.evaluation.scoring import score_request
from llmops_feedback.settings import FeedbackSettings

logger = logging.getLogger("llmops_feedback.evaluation.worker")
JUDGEMENTS = Counter("llmops_eval_judgements", "Scorings done, by rubric and outcome", ("rubric", "status"))
JUDGE_TOKENS = Counter("llmops_eval_judge_tokens", "Tokens the judge spent", ("rubric",))


class Runtime:
    """The worker's event loop (in a thread), SQL engine and gateway client."""

    def __init__(self, settings: FeedbackSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="evaluation-loop", daemon=True).start()
        self.engine = sql.make_engine(settings.database_url, settings.database_timeouts)
        self.sessions = sql.make_sessionmaker(self.engine)
        self.similarity = Similarity()  # loads the embedding model on first use
        self.gateway = self.mlflow = None
        if settings.gateway_url and settings.eval_judge_key:
            self.gateway = self.run(self._client(settings))
        if settings.mlflow_tracking_uri:  # offline gates are logged there
            self.mlflow = self.run(self._mlflow(settings.mlflow_tracking_uri))

    @staticmethod
    async def _client(settings: FeedbackSettings) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=settings.gateway_url, headers={"authorization": f"Bearer {settings.eval_judge_key}"},
            timeout=settings.eval_judge_timeout_s,
        )  # fmt: skip

    @staticmethod
    async def _mlflow(uri: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=uri.rstrip("/"), timeout=30.0)

    def run(self, coroutine, timeout_s: float | None = None):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    async def score(
        self, request_id: str, rubric: rubrics.Rubric, judge_route: str | None, final: bool
    ) -> tuple[str, int]:
        async with self.sessions() as session:
            return await score_request(
                session, request_id=request_id, rubric=rubric, judge_route=judge_route, gateway=self.gateway,
                settings=self.settings, final_attempt=final,
                similarity=self.similarity,
            )  # fmt: skip


def register(app: Celery, runtime: Runtime) -> None:
    retries = runtime.settings.eval_judge_retries

    @app.task(name=EVALUATE_TASK, bind=True, max_retries=retries)
    def evaluate(self, request_id: str, rubric_name: str, judge_route: str | None = None) -> str:
        rubric = rubrics.get(rubric_name)
        if rubric is None:  # queued by a newer version that knows more rubrics: nothing this worker can do
            logger.warning("unknown rubric", extra={"rubric": rubric_name})
            return "skipped"
        final = self.request.retries >= retries
        try:
            status, tokens = runtime.run(runtime.score(request_id, rubric, judge_route or None, final))
        except JudgeError as exc:  # transient (429 over the judge's quota, upstream down): later, within retries
            delay = float(exc.retry_after) if (exc.retry_after or "").isdigit() else 2.0 * 2**self.request.retries
            logger.info("judge unavailable; retrying", extra={"status": exc.status, "delay_s": delay})
            raise self.retry(countdown=min(delay, 300.0)) from None
        JUDGEMENTS.labels(rubric.name, status).inc()
        JUDGE_TOKENS.labels(rubric.name).inc(tokens)
        return status

    @app.task(name=COMPARE_TASK)
    def compare(comparison_id: str) -> str:
        if runtime.gateway is None:
            reason = "no gateway or judge key on the evaluation worker (FEEDBACK_GATEWAY_URL, FEEDBACK_EVAL_JUDGE_KEY)"
            runtime.run(comparisons.fail(runtime.sessions, comparison_id=comparison_id, reason=reason))
            return "failed"
        settings = runtime.settings
        try:
            return _compare(comparison_id, settings)
        except Exception as exc:
            logger.exception("comparison failed", extra={"comparison": comparison_id})
            runtime.run(comparisons.fail(runtime.sessions, comparison_id=comparison_id, reason=repr(exc)))
            return "failed"

    def _compare(comparison_id: str, settings: FeedbackSettings) -> str:
        return runtime.run(comparisons.run(
            runtime.sessions, comparison_id=comparison_id, gateway=runtime.gateway, mlflow=runtime.mlflow,
            attempts=settings.eval_judge_attempts, structured=settings.eval_judge_structured,
            similarity=runtime.similarity,
        ))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    settings = FeedbackSettings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    if not settings.eval_redis_url:
        sys.exit("FEEDBACK_EVAL_REDIS_URL is not set: the evaluation worker has no queue to consume")
    app = make_celery(settings)
    register(app, Runtime(settings))
    health = health_server(settings).start()
    signals.setup_logging.connect(lambda **_: None, weak=False)
    signals.worker_ready.connect(lambda **_: health.mark_ready(), weak=False)
    logger.info("evaluation worker starting", extra={"queue": settings.eval_queue})
    try:
        app.worker_main([
            "worker", "--queues", settings.eval_queue, "--pool", "threads",
            "--concurrency", str(settings.eval_worker_concurrency), "--loglevel", settings.log_level.upper(),
            "--hostname", f"evaluation-{os.getpid()}@{socket.gethostname()}",
            "--without-gossip", "--without-mingle", "--without-heartbeat", *(argv or []),
        ])  # fmt: skip
    finally:
        health.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
