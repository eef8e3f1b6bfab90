"""schemathesis against the trainer's job API, stateless, every operation, with the admin token: no 5xx, every
response conforms to the document, errors in the documented body. Bounded: a few derandomized examples per
operation, no shrinking (llmops_testkit.fuzz).

The API alone (no worker): a job the fuzzer submits stays queued on a private Redis key prefix, no training runs.
"""

import uuid

import pytest

from llmops_testkit.fuzz import fuzz_openapi
from llmops_testkit.trainer import Trainer, new_token, trainer_env


@pytest.fixture(scope="module")
def trainer_api(llmops_state_dir, redis_url):
    state_dir = llmops_state_dir / f"trainer-fuzz-{uuid.uuid4().hex[:6]}"
    env = trainer_env(
        sql_url=f"sqlite+aiosqlite:///{state_dir / 'trainer.db'}",
        redis_url=redis_url,
        mlflow_uri="http://127.0.0.1:9",  # nothing listens: no operation here needs MLflow
        state_dir=state_dir,
        admin_token=new_token(),
    )
    trainer = Trainer(env=env, state_dir=state_dir).start(workers=0)
    yield trainer
    trainer.stop()


def test_every_operation_answers_within_its_document(trainer_api):
    run, failures = fuzz_openapi(
        f"{trainer_api.url}/openapi.json",
        headers=lambda case: {"authorization": f"Bearer {trainer_api.admin_token}"},
        max_examples=10,
        # Rules JSON Schema does not state here: a dataset names exactly one source (jsonl or feedback); an upload's
        # spec is a JSON object inside a form field. A schema-valid body refused with 4xx there is no finding.
        lenient=lambda operation: (
            (operation.method.upper(), operation.path) in {("POST", "/jobs"), ("POST", "/jobs/upload")}
        ),
    )
    assert run >= 3
    assert not failures, "\n\n".join(failures)
