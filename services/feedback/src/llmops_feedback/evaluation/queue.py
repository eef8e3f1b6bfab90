"""The evaluation queue: a Celery app on Redis. The feedback service only sends (the online sample, ``POST
/v1/evaluations/runs``); ``python -m llmops_feedback.evaluation.worker`` consumes."""

from celery import Celery

from llmops_feedback.settings import FeedbackSettings

EVALUATE_TASK = "llmops_feedback.evaluate"
COMPARE_TASK = "llmops_feedback.compare"


def make_celery(settings: FeedbackSettings) -> Celery:
    prefix = {"global_keyprefix": settings.eval_redis_key_prefix}
    # No result backend: the outcome of a judgement is its row in eval_scores.
    app = Celery("llmops_evaluation", broker=settings.eval_redis_url, backend=None, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.eval_queue,
        task_serializer="json",
        accept_content=["json"],
        # Acknowledged when judged: a worker that dies mid-judgement leaves the message for another one.
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_transport_options=prefix,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def dispatch(app: Celery, *, queue: str, request_ids: list[str], rubric: str, judge_route: str | None) -> None:
    """Sends one message per request. Blocking (call it from a thread in async code)."""
    for request_id in request_ids:
        app.send_task(EVALUATE_TASK, args=[request_id, rubric], kwargs={"judge_route": judge_route}, queue=queue)


def dispatch_comparison(app: Celery, *, queue: str, comparison_id: str) -> None:
    """Blocking (call it from a thread in async code)."""
    app.send_task(COMPARE_TASK, args=[comparison_id], queue=queue)
