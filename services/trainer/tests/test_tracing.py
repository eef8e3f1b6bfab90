"""A training job's span joins the trace of the request that queued it: the trace context travels in the Celery
message's headers (a real message through Redis to a real worker) and comes out as the job span's parent."""

import json
import subprocess
import sys
import uuid

import pytest

from llmops_testkit.otlp import OtlpReceiver

PROBE = """
import json, sys, threading
from celery.contrib.testing.worker import start_worker
from llmops_common import tracing
from llmops_trainer.settings import TrainerSettings
from llmops_trainer.worker.celery_app import TRAIN_TASK, dispatch, make_celery
from llmops_trainer.worker.tasks import job_span

assert tracing.configure_tracing("llmops-trainer")
redis_url, prefix, queue = sys.argv[1:4]
settings = TrainerSettings(redis_url=redis_url, redis_key_prefix=prefix, queue=queue)
app = make_celery(settings)
ran, finished = {}, threading.Event()


@app.task(name=TRAIN_TASK, bind=True)  # the real task's span, around a job that does nothing
def train(task, job_id, spec=None):
    with job_span(task, job_id):
        ran.update(tracing.log_fields())
    finished.set()


class Spec:
    def model_dump(self, mode):
        return {"probe": True}


with start_worker(app, pool="solo", perform_ping_check=False):
    with tracing.span("POST /jobs"):
        sent = tracing.log_fields()
        dispatch(app, job_id="job-1", spec=Spec(), queue=queue)
    assert finished.wait(20), "the worker never ran the task"
tracing.flush()
print(json.dumps({"sent": sent, "ran": ran}))
"""


@pytest.fixture(scope="module")
def receiver():
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def test_the_job_span_is_a_child_of_the_request_that_queued_it(receiver, redis_url, tmp_path):
    prefix, queue = f"test:{uuid.uuid4().hex[:8]}:", f"trace-{uuid.uuid4().hex[:6]}"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, redis_url, prefix, queue],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **receiver.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # its stderr is the failure message
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    assert ids["ran"]["trace_id"] == ids["sent"]["trace_id"]
    spans = receiver.wait_for(lambda s: any(x.name == "train job" for x in s))
    (job,) = [s for s in spans if s.name == "train job"]
    assert job.parent_span_id == ids["sent"]["span_id"] and job.kind == "consumer"
    assert job.attributes["llmops.job_id"] == "job-1" and job.service == "llmops-trainer"
