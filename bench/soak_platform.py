"""The platform the soak runs against, every part a real process started by the testkit as the tests start it.

Gateway (request log delivered to the feedback service, RAG through the retriever), feedback service (SQLite),
retriever (Qdrant Edge in-process, the store `llmops up` runs, MiniLM embeddings) with a small collection, MLflow,
trainer API and one Celery worker on the bundled model, Redis; the model upstream is the fake OpenAI upstream, or
the inference service (vLLM) with ``vllm=True``.
"""

import os
import sys
import time
from pathlib import Path

from evaluation_bench import load_demo
from soak_report import process_children, rss_mb

from llmops_cli.infra import find_or_start_redis
from llmops_cli.procs import free_port, spawn, stop_processes
from llmops_testkit.feedback import Feedback, feedback_env, new_tokens
from llmops_testkit.gateway import Gateway, gateway_env, new_secrets
from llmops_testkit.inference import InferenceService, inference_env, prepare_bundled_model
from llmops_testkit.mlflow_server import MlflowServer
from llmops_testkit.processes import wait_ready
from llmops_testkit.retriever import Retriever, retriever_env
from llmops_testkit.trainer import Trainer, trainer_env
from llmops_testkit.trainer import new_token as new_trainer_token

COLLECTION = "soak-docs"
ROUTE, RAG_ROUTE = "soak", "soak-rag"
START_TIMEOUT_S = 300.0  # torch and the embedding model load side by side on a few busy cores


class Platform:
    def __init__(self, tmp: Path, *, vllm: bool = False) -> None:
        prepare_bundled_model()  # the trainer's base model (and vLLM's), converted once per machine
        self.redis = find_or_start_redis(tmp, die_with_parent=True)
        self.upstream = self.inference = self.gateway = None
        if vllm:
            self.inference = InferenceService(
                env=inference_env(state_dir=tmp / "inference", admin_token=new_secrets()[0]),
                state_dir=tmp / "inference",
            )
        else:
            self.upstream_port = free_port()
            self.upstream = spawn(
                [sys.executable, "-m", "llmops_testkit.fake_upstream", "--port", str(self.upstream_port),
                 "--chunks", "8"],
                log_path=tmp / "upstream.log", env=dict(os.environ), die_with_parent=True,
            )  # fmt: skip
        admin_token, ingest_token = new_tokens()
        self.feedback = Feedback(
            env={
                **feedback_env(
                    sql_url=f"sqlite+aiosqlite:///{tmp / 'feedback.db'}",
                    admin_token=admin_token,
                    ingest_token=ingest_token,
                ),
                "FEEDBACK_LOG_LEVEL": "WARNING",
                "FEEDBACK_QUALITY_REFRESH_S": "5",
            },
            state_dir=tmp / "feedback",
        )
        read_token, retriever_admin = new_tokens()
        self.retriever = Retriever(
            env={
                **retriever_env(store="edge", state_dir=tmp / "retriever", admin_token=retriever_admin,
                                read_token=read_token),
                "RETRIEVER_LOG_LEVEL": "WARNING",
            },
            state_dir=tmp / "retriever",
        )  # fmt: skip
        self.mlflow = MlflowServer(tmp / "mlflow")
        self.trainer = Trainer(
            env=trainer_env(
                sql_url=f"sqlite+aiosqlite:///{tmp / 'trainer.db'}",
                redis_url=self.redis.url,
                mlflow_uri=self.mlflow.url,
                state_dir=tmp / "trainer",
                admin_token=new_trainer_token(),
                TRAINER_FEEDBACK_URL=self.feedback.url,
                TRAINER_FEEDBACK_TOKEN=admin_token,  # the feedback admin token: its SFT export
                TRAINER_LOG_LEVEL="WARNING",
            ),
            state_dir=tmp / "trainer",
        )
        # The slow starters first, side by side; each launch from this (main) thread, which they die with.
        if self.inference is not None:
            self.inference.start(timeout_s=900)  # vLLM wants the cores to itself while it loads
        self.retriever.process.launch()
        self.mlflow.start(wait=False)
        self.trainer.launch(workers=1)
        self.feedback.start()
        self.mlflow.wait_ready(timeout_s=START_TIMEOUT_S)
        self.trainer.wait_ready(timeout_s=START_TIMEOUT_S)
        self.retriever.process.wait(timeout_s=START_TIMEOUT_S)
        self.gateway = self._start_gateway(tmp)
        self._prepare()

    def _start_gateway(self, tmp: Path) -> Gateway:
        gw_admin, key_secret = new_secrets()
        env = gateway_env(
            sql_url=f"sqlite+aiosqlite:///{tmp / 'gateway.db'}",
            redis_url=self.redis.url,
            state_dir=tmp / "gateway",
            admin_token=gw_admin,
            key_secret=key_secret,
        )
        env.update(
            **self.feedback.gateway_env(),
            **self.retriever.gateway_env(),
            GATEWAY_SPOOL_DIR=str(tmp / "gateway" / "spool"),
            GATEWAY_LOG_LEVEL="WARNING",
            GATEWAY_UPSTREAM_READ_TIMEOUT_S="120" if self.inference else "30",
        )
        return Gateway(env=env, state_dir=tmp / "gateway").start()

    def _prepare(self) -> None:
        """The collection RAG requests retrieve from (the demo's 48 documents), the two routes, a key."""
        facts, distractors = load_demo()
        self.rag_questions = [q for fact in facts for q in fact["questions"]]
        self.retriever.create_collection(COLLECTION)
        self.retriever.ingest(COLLECTION, [{"id": d["id"], "text": d["document"]} for d in [*facts, *distractors]])
        if self.inference is not None:
            variant = {"name": "a", "upstream": f"{self.inference.url}/v1", "model": self.inference.base_model}
        else:
            wait_ready(f"http://127.0.0.1:{self.upstream_port}/v1/models", timeout_s=30)
            variant = {"name": "a", "upstream": f"http://127.0.0.1:{self.upstream_port}/v1", "model": "m"}
        self.gateway.put_route(ROUTE, variants=[variant])
        self.gateway.put_route(RAG_ROUTE, variants=[variant], rag={"collection": COLLECTION, "top_k": 2})
        self.key = self.gateway.create_key(name="soak")[1]
        time.sleep(1.2)  # route and key caches see the new rows

    def memory_mb(self) -> dict[str, float]:
        """Each service's memory now (RSS of its process tree). The trainer worker's pool, where jobs run (a fresh
        process per job), is shown apart from the worker: its memory comes and goes with the jobs."""
        children = process_children()
        worker = self.trainer.workers[0].process.pid
        trees = {
            "gateway": self.gateway.replicas[0].process.pid,
            "feedback": self.feedback.process.process.pid,
            "retriever": self.retriever.process.process.pid,
            "trainer_api": self.trainer.api.process.pid,
            "mlflow": self.mlflow.process.pid,
            # vLLM is the inference service's child
            **({"inference": self.inference.process.pid} if self.inference else {"upstream": self.upstream.pid}),
        }
        memory = {name: rss_mb([pid], children) for name, pid in trees.items()}
        memory["trainer_worker"] = rss_mb([worker], children, descend=False)
        memory["trainer_pool"] = rss_mb(children.get(worker, []), children)
        return memory

    def stop(self) -> None:
        for part in (self.gateway, self.trainer, self.retriever, self.feedback, self.mlflow, self.inference):
            if part is not None:
                part.stop()
        if self.upstream is not None:
            stop_processes([self.upstream])
        self.redis.stop()
