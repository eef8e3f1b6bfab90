"""The batch workers' Celery app: the Redis broker the trainer's workers use too, a queue of its own."""

from celery import Celery

from llmops_gateway.settings import GatewaySettings

SHARD_TASK = "llmops_gateway.batch_shard"


def make_celery(settings: GatewaySettings) -> Celery:
    app = Celery("llmops_batch", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.batch_queue,
        task_serializer="json",
        accept_content=["json"],
        # Acknowledged when the shard ends: a worker that dies before claiming its shard does not lose the message.
        # One that dies after is covered by the shard's lease (the dispatcher sends the shard again).
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.batch_worker_concurrency,
        broker_transport_options={"global_keyprefix": f"{settings.redis_key_prefix}batch:"},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_ignore_result=True,
    )
    return app
