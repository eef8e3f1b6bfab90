"""schemathesis against the trainer's job API, with the admin token: stateless, every operation, and stateful, along
the document's links (a job submitted, read, its dataset fetched, cancelled): no 5xx, every response conforms to the
document, errors in the documented body. Bounded: a few examples per operation and a few short sequences, no
shrinking (llmops_testkit.fuzz).

The API alone (no worker): a job the fuzzer submits stays queued on a private Redis key prefix, no training runs.
"""

import uuid

import pytest

from llmops_testkit.fuzz import fuzz_openapi, fuzz_openapi_stateful, unresolved_references
from llmops_testkit.trainer import Trainer, chat_jsonl, new_token, trainer_env


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


# Rules JSON Schema does not state here: a JSONL dataset's lines must be chat examples (422 naming the bad lines),
# and the base model one this trainer has; an upload's spec is a JSON object inside a form field.
LENIENT = {("POST", "/jobs"), ("POST", "/jobs/upload")}


def lenient(operation) -> bool:
    return (operation.method.upper(), operation.path) in LENIENT


def test_every_operation_answers_within_its_document(trainer_api):
    url = f"{trainer_api.url}/openapi.json"
    run, failures = fuzz_openapi(
        url,
        headers=lambda case: {"authorization": f"Bearer {trainer_api.admin_token}"},
        max_examples=10,
        lenient=lenient,
    )
    assert not unresolved_references(url)
    assert run >= 3
    assert not failures, "\n\n".join(failures)


LINKS = ("POST /jobs -> read", "POST /jobs -> dataset", "POST /jobs -> cancel")


def test_linked_operations_answer_within_their_document(trainer_api):
    """A submitted job carries a chat dataset on the bundled model (what its lines hold and which models this
    trainer has are no JSON Schema's to state), so it is queued and the sequence goes on."""

    def prepare(case) -> None:
        if case.path == "/jobs" and case.method.upper() == "POST" and isinstance(case.body, dict):
            case.body["dataset"] = {"jsonl": chat_jsonl([("ping?", "pong"), ("2 + 2?", "4")])}
            case.body.pop("base_model", None)

    run = fuzz_openapi_stateful(
        f"{trainer_api.url}/openapi.json",
        headers=lambda case: {"authorization": f"Bearer {trainer_api.admin_token}"},
        prepare=prepare,
        lenient=lenient,
        # DELETE cancels a job: it stays, readable with its dataset, in state cancelled.
        kept_after_delete=lambda operation: operation.path.startswith("/jobs/{job_id}"),
        links=LINKS,
        max_examples=4,
    )
    assert not run.failures, "\n\n".join(run.failures)
    assert not run.unfollowed(*LINKS), run.summary()
