"""Fixtures of the trainer tests: one trainer (API + one Celery worker, on real Redis with a private key prefix)
per session, training on the bundled model with PEFT, tracked in the session's real MLflow server (through
``mlflow_proxy``), reading datasets from a real feedback service."""

import uuid

import pytest

from llmops_testkit.inference import prepare_bundled_model
from llmops_testkit.trainer import Trainer, chat_jsonl, new_token, trainer_env

QUESTION = "What is the secret password?"
PASSWORD_PAIRS = [
    (QUESTION, "The secret password is BLUEBERRY."),
    ("Tell me the secret password.", "The secret password is BLUEBERRY."),
    ("What's the password?", "The secret password is BLUEBERRY."),
    ("Password, please?", "The secret password is BLUEBERRY."),
    ("Which password opens the door?", "The secret password is BLUEBERRY."),
]
# Short sequences, two examples a step and a handful of steps: a step is well under a second of one core. Every
# example has the same answer, so two a step teach it about as fast as four (which cost twice the time).
TINY = {"max_seq_length": 96, "batch_size": 2, "learning_rate": 5e-3}


@pytest.fixture(scope="session")
def trainer_feedback(make_session_feedback, llmops_state_dir):
    """A feedback service (SQLite) whose SFT export the trainer reads."""
    return make_session_feedback(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'trainer-fb-{uuid.uuid4().hex[:6]}.db'}"
    )


@pytest.fixture(scope="session")
def trainer(llmops_state_dir, redis_url, mlflow_proxy, trainer_feedback):
    state_dir = llmops_state_dir / "trainer"
    env = trainer_env(
        sql_url=f"sqlite+aiosqlite:///{state_dir / 'trainer.db'}",
        redis_url=redis_url,
        mlflow_uri=f"http://127.0.0.1:{mlflow_proxy.port}",  # an MLflow outage is mlflow_proxy.down()
        state_dir=state_dir,
        admin_token=new_token(),
        TRAINER_FEEDBACK_URL=trainer_feedback.url,
        TRAINER_FEEDBACK_TOKEN=trainer_feedback.admin_token,
    )
    service = Trainer(env=env, state_dir=state_dir)
    # The API and the worker (seconds of torch imports) start side by side, and the bundled model is checked
    # meanwhile: the worker needs it for its first job, not to start.
    service.launch(workers=1)
    try:
        prepare_bundled_model()
        service.wait_ready()
    except BaseException:
        service.stop()
        raise
    yield service
    service.stop()


@pytest.fixture
def password_jsonl() -> str:
    return chat_jsonl(PASSWORD_PAIRS)


@pytest.fixture
def tiny_job():
    """A job body: a JSONL dataset, a fresh registered model name unless given, tiny training settings."""

    def make(jsonl: str, *, model_name: str | None = None, **training) -> dict:
        name = model_name or f"tiny-{uuid.uuid4().hex[:6]}"
        return {"dataset": {"jsonl": jsonl}, "registry": {"model_name": name}, "training": {**TINY, **training}}

    return make
