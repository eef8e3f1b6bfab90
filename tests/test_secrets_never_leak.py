"""No secret of the platform appears in what its services log, export, expose, answer or store: traffic across every
service, then a scan of everything captured (``llmops_testkit.leaks``).

Real processes, each exporting its spans to a real OTLP receiver on loopback: the gateway (console on, a batch worker
beside it), the feedback service, the retriever (real embeddings, Qdrant Edge), the trainer's job API (no worker:
nothing trains) and the inference service, which supervises a fake OpenAI server where vLLM would run
(``fake_vllm_env``); the gateway's other model upstreams are fakes too. Each service gets calls with the right and
wrong credentials; the gateway plain, streamed, RAG, embedding, batch and inference-served traffic, a rating, 422s
with a secret in a body field, keys sent revoked, unknown, cut, as Basic auth, in a malformed header or in the query
string, upstreams that fail, and the console a wrong and a right sign-in. Last, the feedback service's ingest token
is rotated without the gateway's (the window SECURITY.md describes): its deliveries are refused and spooled.

Scanned for every secret in play, in every form: each process's log, each ``/metrics`` page, every span exported
(attributes, events, status, resource), every HTTP answer the test received (headers and body), every row of every
SQLite store (the gateway's holds key hashes, nothing else may), Redis under the platform's prefixes, and every file
the services wrote (spool, files, logs). The scanner is tested on planted secrets in
``test_leak_scanner.py``.
"""

import base64
import hashlib
import hmac
import io
import secrets
import time
import uuid
from dataclasses import replace

import httpx
import pytest
from openai import OpenAI

from llmops_gateway.keys.service import DISPLAY_PREFIX_CHARS
from llmops_testkit.batch import BatchWorker, batch_env, chat_line, jsonl, wait_for
from llmops_testkit.console import CONSOLE_PAGES, sign_in
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.inference import InferenceService, fake_vllm_env, inference_env
from llmops_testkit.leaks import Capture, HttpRecorder, Secret, file_captures, redis_capture, scan, sqlite_rows
from llmops_testkit.processes import free_port, stop_together
from llmops_testkit.retriever import Retriever, retriever_env
from llmops_testkit.trainer import Trainer, trainer_env

KEY_SHOWN = DISPLAY_PREFIX_CHARS  # sk-llmops- and 6 characters: what key lists show
SERVICES = ("llmops-gateway", "llmops-feedback", "llmops-retriever", "llmops-trainer", "llmops-inference")


# --- the platform, its traffic, what it left behind ---


def key_hash(value: str, key_secret: str) -> str:
    return hmac.new(key_secret.encode(), value.encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def stack(make_gateway, make_feedback, otlp_receiver, redis_url, llmops_state_dir):
    """Every service, their secrets (``tokens``), and ``stop()`` (the services exit, flushing their spans)."""
    root = llmops_state_dir / f"leaks-{uuid.uuid4().hex[:6]}"
    names = ("trainer admin", "inference admin", "inference serving", "batch", "retriever admin", "retriever read")
    tokens = {name: secrets.token_urlsafe(24) for name in names}
    tokens |= {name: secrets.token_urlsafe(32) for name in ("vLLM API key", "previous key-hashing secret")}
    tokens["upstream API key"] = "sk-proj-" + secrets.token_urlsafe(32)  # an external model server's
    started: list = []  # stopped in reverse, whatever happens
    try:
        # Every process launched first, then each awaited: their starts overlap (none needs another one up to start).
        retriever = Retriever(state_dir=root / "retriever", env=retriever_env(
            store="edge", state_dir=root / "retriever", admin_token=tokens["retriever admin"],
            read_token=tokens["retriever read"], **otlp_receiver.env(),
        ))  # fmt: skip
        trainer = Trainer(state_dir=root / "trainer", env=trainer_env(
            sql_url=f"sqlite+aiosqlite:///{root / 'trainer.db'}", redis_url=redis_url,
            mlflow_uri="http://127.0.0.1:9", state_dir=root / "trainer", admin_token=tokens["trainer admin"],
            **otlp_receiver.env(),
        ))  # fmt: skip
        inference = InferenceService(state_dir=root / "inference", env=inference_env(
            state_dir=root / "inference", admin_token=tokens["inference admin"],
            INFERENCE_SERVING_TOKEN=tokens["inference serving"], INFERENCE_VLLM_API_KEY=tokens["vLLM API key"],
            **fake_vllm_env(root / "fake-vllm"), **otlp_receiver.env(),
        ))  # fmt: skip
        feedback = make_feedback(
            sql_url=f"sqlite+aiosqlite:///{root / 'feedback.db'}",
            FEEDBACK_INFERENCE_SERVING_TOKEN=tokens["inference serving"],  # held as `llmops up` gives it
            **otlp_receiver.env(),
            start=False,
        )
        gateway = make_gateway(
            sql_url=f"sqlite+aiosqlite:///{root / 'gateway.db'}",
            **feedback.gateway_env(),
            **retriever.gateway_env(),
            **batch_env("", GATEWAY_BATCH_TOKEN=tokens["batch"], GATEWAY_BATCH_QUEUE=f"leaks-{uuid.uuid4().hex[:8]}"),
            **otlp_receiver.env(),
            GATEWAY_KEY_SECRETS_PREVIOUS=tokens["previous key-hashing secret"],
            GATEWAY_FILES_URL=str(root / "files"),
            GATEWAY_FEEDBACK_ADMIN_TOKEN=feedback.admin_token,
            GATEWAY_TRAINER_URL=trainer.url,
            GATEWAY_TRAINER_ADMIN_TOKEN=trainer.admin_token,
            GATEWAY_RETRIEVER_ADMIN_TOKEN=retriever.admin_token,
            LLMOPS_LEAKS_SERVING_TOKEN=tokens["inference serving"],  # route variants' api_key_env
            LLMOPS_LEAKS_UPSTREAM_KEY=tokens["upstream API key"],
            start=False,
        )
        worker_env = {**gateway.env, "GATEWAY_BATCH_GATEWAY_URL": gateway.url}
        worker = BatchWorker(env=worker_env, state_dir=gateway.state_dir, name="batch-worker")
        started += [retriever, trainer, inference, feedback, gateway, worker]
        trainer.launch(workers=0)  # the job API alone: nothing trains
        for service in (retriever, inference, feedback, gateway, worker):
            service.launch()
        inference.wait(timeout_s=120)
        for service in (feedback, retriever, gateway, worker):
            service.wait()
        trainer.wait_ready(timeout_s=120)
        tokens |= {
            "gateway admin token": gateway.admin_token,
            "key-hashing secret": gateway.env["GATEWAY_KEY_SECRET"],
            "feedback admin token": feedback.admin_token,
            "feedback ingest token": feedback.ingest_token,
        }
        services = {"gateway": gateway, "feedback": feedback, "retriever": retriever, "trainer": trainer}
        services |= {"inference": inference, "worker": worker}

        def stop() -> None:
            # All at once, but the feedback service last: the gateway's last records go to it as the gateway stops.
            stop_together(*(service for service in started if service is not feedback))
            feedback.stop()

        yield root, services, tokens, stop
    finally:
        for service in reversed(started):
            service.stop()


class Traffic:
    """The calls, one method per kind; ``made``: the secrets they make on the way (keys, a session, wrong tokens),
    ``seen``: what came back that the scan needs to have happened."""

    def __init__(self, services: dict, tokens: dict[str, str], upstreams: dict, recorder: HttpRecorder) -> None:
        self.services, self.tokens, self.upstreams, self.recorder = services, tokens, upstreams, recorder
        self.gateway = services["gateway"]
        self.made = {name: secrets.token_urlsafe(24) for name in ("wrong token", "wrong console password")}
        self.made["unknown key"] = "sk-llmops-" + secrets.token_urlsafe(32)
        self.seen: dict = {}
        self._clients: list[httpx.Client] = []

    def to(self, service: str, token: str | None = None, **kwargs) -> httpx.Client:
        """A client of ``service`` that records what it receives, with ``token`` as its bearer; closed by ``run``."""
        client = self.recorder.client(self.services[service].url, token=token, **kwargs)
        self._clients.append(client)
        return client

    def run(self) -> "Traffic":
        try:
            for step in (self.credentials, self.routes, self.gateway_calls, self.refused_keys, self.batch):
                step()
            for step in (self.console, self.other_services, self.stored_records, self.ingest_token_rotated):
                step()
        finally:
            for client in self._clients:
                client.close()
        return self

    def credentials(self) -> None:
        with self.to("gateway", self.gateway.admin_token) as admin:
            for name in ("key", "revoked key"):
                created = admin.post("/admin/keys", json={"name": f"leaks-{name.replace(' ', '-')}"})
                assert created.status_code == 201, created.text
                self.recorder.allow(name)  # a key's secret is in the answer that creates it, and only there
                self.made[name], self.seen[f"{name} id"] = created.json()["key"], created.json()["id"]
            identity = admin.post("/admin/identities", json={"name": "leaks-viewer", "role": "viewer"})
            assert identity.status_code == 201, identity.text
            self.recorder.allow("identity token")
            self.made["identity token"] = identity.json()["token"]
        key = self.made["key"]
        self.made["near-miss key"] = key[:-4] + ("abcd" if not key.endswith("abcd") else "efgh")

    def routes(self) -> None:
        retriever, alpha = self.services["retriever"], self.upstreams["alpha"]
        with self.to("retriever", retriever.admin_token, timeout=120) as admin:
            assert admin.post("/v1/collections", json={"name": "harbour"}).status_code == 201
            documents = [{"id": "almanac", "text": "The harbour master of Velmora is Odalys Brenn."}]
            assert admin.post("/v1/collections/harbour/documents", json={"documents": documents}).status_code == 200
        self.upstreams["beta"].behaviour.status = 503  # a failing model server: the gateway logs it
        refusing = self.upstreams["gamma"].behaviour  # one that refuses the gateway's key for it, quoting it
        refusing.status, refusing.quote_authorization = 401, True
        routes = {
            "plain": [variant("a", alpha)],
            "failing": [variant("b", self.upstreams["beta"])],
            "unreachable": [{"name": "gone", "upstream": f"http://127.0.0.1:{free_port()}/v1", "model": "m"}],
            "served": [{"name": "inference", "upstream": f"{self.services['inference'].url}/v1",
                        "model": "fake-model", "api_key_env": "LLMOPS_LEAKS_SERVING_TOKEN"}],
            "refusing": [{**variant("c", self.upstreams["gamma"]), "api_key_env": "LLMOPS_LEAKS_UPSTREAM_KEY"}],
        }  # fmt: skip
        self.route = {name: self.gateway.put_route(variants=spec) for name, spec in routes.items()}
        self.route["rag"] = self.gateway.put_route(variants=routes["plain"], rag={"collection": "harbour", "top_k": 2})

    def gateway_calls(self) -> None:
        """Plain, RAG, inference-served, failing and streamed completions, embeddings, a rating, 422s carrying a key."""
        route = self.route
        with self.to("gateway", self.made["key"]) as client:
            answers = {name: client.post("/v1/chat/completions", json=chat_body(route[name])) for name in route}
            statuses = {name: answer.status_code for name, answer in answers.items()}
            expected = {"plain": 200, "failing": 502, "unreachable": 502, "served": 200, "refusing": 502, "rag": 200}
            assert statuses == expected, statuses
            assert answers["rag"].headers["x-llmops-rag"] == "context"
            streamed = chat_body(route["plain"], stream=True, stream_options={"include_usage": True})
            with client.stream("POST", "/v1/chat/completions", json=streamed) as answer:
                assert answer.status_code == 200 and "[DONE]" in answer.read().decode()
            assert client.post("/v1/completions", json={"model": route["plain"], "prompt": "hi"}).status_code == 200
            assert client.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "hi"}).status_code == 200
            self.seen["request id"] = answers["plain"].headers["x-request-id"]
            rating = {"request_id": self.seen["request id"], "rating": "up"}
            assert client.post("/v1/feedback", json=rating).status_code in (201, 202)
            # 422s with a key in a body field: the error names the field, never its value
            invalid = {"model": route["plain"], "messages": self.made["key"]}
            assert client.post("/v1/chat/completions", json=invalid).status_code == 422
            invalid = {"request_id": self.made["key"], "rating": self.made["key"]}
            assert client.post("/v1/feedback", json=invalid).status_code == 422

    def refused_keys(self) -> None:
        """Keys revoked, unknown, cut, as Basic auth, in malformed headers or the query string; the admin API with
        wrong tokens and a key; the batch workers' API with a wrong token."""
        made, key = self.made, self.made["key"]
        with self.to("gateway", made["revoked key"]) as revoked:
            assert revoked.get("/v1/models").status_code == 200
        with self.to("gateway", self.gateway.admin_token) as admin:
            assert admin.delete(f"/admin/keys/{self.seen['revoked key id']}").status_code in (200, 204)
        basic = "Basic " + base64.b64encode(f"client:{key}".encode()).decode()
        bad = [f"Bearer {made[name]}" for name in ("revoked key", "unknown key", "near-miss key", "identity token")]
        bad += [basic, f"Bearer{key}", f"Token {key}", key, f"Bearer {key} {key}", f"Bearer {key * 5}"]
        bad += [f"Bearer {self.gateway.admin_token}", f"Bearer {made['wrong token']}"]
        with self.to("gateway") as anyone:
            refused = [anyone.get("/v1/models", headers={"authorization": value}) for value in bad]
            refused.append(anyone.get(f"/v1/models?api_key={made['unknown key']}"))
        assert {r.status_code for r in refused} == {401}, [(r.status_code, r.text) for r in refused]
        assert self.to("gateway", made["identity token"]).get("/admin/keys").status_code == 200
        for wrong in (made["wrong token"], key, self.tokens["batch"]):
            assert self.to("gateway", wrong).get("/admin/keys").status_code == 401
        assert self.to("gateway", made["wrong token"]).post("/internal/batches/b/admit", json={}).status_code == 401

    def batch(self) -> None:
        """Three lines, run by the batch worker through the gateway with the workers' token."""
        http = self.to("gateway")
        sdk = OpenAI(base_url=f"{self.gateway.url}/v1", api_key=self.made["key"], max_retries=0, http_client=http)
        lines = [chat_line(f"line-{i}", self.route["plain"], f"question {i}") for i in range(3)]
        uploaded = sdk.files.create(file=("leaks.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        batch = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
        batch = wait_for(sdk, batch.id, lambda b: b.status in ("completed", "failed"), timeout_s=60)
        assert batch.status == "completed" and batch.request_counts.completed == 3, batch
        sdk.files.content(batch.output_file_id)

    def console(self) -> None:
        """A wrong password, then the admin token; pages that read the other services with their tokens."""
        with self.to("gateway", follow_redirects=False) as console:
            assert sign_in(console, self.made["wrong console password"]).status_code == 401
            assert sign_in(console, self.gateway.admin_token).status_code == 303
            self.recorder.allow("console session")  # its Set-Cookie carries it, and only that answer
            session = self.made["console session"] = console.cookies["llmops_console"]
            for page in CONSOLE_PAGES:
                assert console.get(page).status_code == 200, page
            assert console.post("/console/logout", data={"csrf_token": "wrong"}).status_code == 403
        with self.to("gateway", follow_redirects=False, cookies={"llmops_console": session + "x"}) as stale:
            assert stale.get("/console/keys").status_code == 303

    def other_services(self) -> None:
        """Each service's own API: its token, wrong ones, another service's, a 422 carrying a key; the retriever's
        read token, the feedback service's ingest token, the inference service's serving token."""
        key, wrong = self.made["key"], (self.made["wrong token"], self.made["key"], self.tokens["batch"])
        calls = {  # service: (token, a read, a write, a body that write refuses)
            "feedback": ("feedback admin token", "/v1/requests", "/v1/feedback", {"request_id": 1, "rating": key}),
            "retriever": ("retriever admin", "/v1/collections", "/v1/collections/harbour/search",
                          {"query": key, "top_k": key}),
            "trainer": ("trainer admin", "/jobs", "/jobs", {"base_model": key, "lora": key}),
            "inference": ("inference admin", "/admin/engine", None, None),
        }  # fmt: skip
        for name, (token, read, write, invalid) in calls.items():
            assert self.to(name, self.tokens[token]).get(read).status_code == 200, name
            assert {self.to(name, token).get(read).status_code for token in wrong} == {401}, name
            if write is not None:
                assert self.to(name, self.tokens[token]).post(write, json=invalid).status_code == 422, name
        search = {"query": "harbour master"}
        reader = self.to("retriever", self.tokens["retriever read"])
        assert reader.post("/v1/collections/harbour/search", json=search).status_code == 200
        assert self.to("feedback", self.tokens["feedback ingest token"]).get("/v1/requests").status_code == 401
        records = {"records": []}
        assert self.to("feedback", self.made["wrong token"]).post("/v1/requests", json=records).status_code == 401
        served = self.to("inference", self.tokens["inference serving"])
        assert served.post("/v1/chat/completions", json=chat_body("fake-model")).status_code == 200
        assert self.to("inference", self.made["wrong token"]).get("/v1/models").status_code == 401

    def stored_records(self) -> None:
        """The request log as the feedback service stored it (delivered in the background: awaited)."""
        with self.to("feedback", self.tokens["feedback admin token"]) as reader:
            deadline = time.monotonic() + 20
            while reader.get(f"/v1/requests/{self.seen['request id']}").status_code != 200:
                assert time.monotonic() < deadline, "the request log never reached the feedback service"
                time.sleep(0.2)
            assert reader.get("/v1/requests", params={"limit": 200}).json()["data"]

    def ingest_token_rotated(self) -> None:
        """The feedback service's ingest token changed before the gateway's: deliveries refused (401), logged, and
        spooled on disk."""
        process = self.services["feedback"].process
        self.made["rotated ingest token"] = secrets.token_urlsafe(24)
        process.stop()
        process.env["FEEDBACK_INGEST_TOKEN"] = self.made["rotated ingest token"]
        process.start()
        with self.to("gateway", self.made["key"]) as client:
            assert client.post("/v1/chat/completions", json=chat_body(self.route["plain"])).status_code == 200
        spool = self.gateway.state_dir / "spool"
        deadline = time.monotonic() + 20
        while not any(path.is_file() for path in spool.rglob("*")):
            assert time.monotonic() < deadline, f"nothing spooled: {self.gateway.replicas[0].log_tail()}"
            time.sleep(0.2)
        logged = [line for line in self.gateway.logs().splitlines() if "spooling request records" in line]
        assert logged and "401" in logged[0], "the refusal took another path than the one that logs it"


@pytest.fixture(scope="module")
def captured(stack, otlp_receiver, redis_url, _fake_upstreams):
    """(secrets, captures by kind) after the traffic, with every service stopped (its spans flushed, its log whole)."""
    root, services, tokens, stop = stack
    recorder = HttpRecorder()
    for upstream in _fake_upstreams.values():
        upstream.reset()
    try:
        made = Traffic(services, tokens, _fake_upstreams, recorder).run().made
    finally:
        for upstream in _fake_upstreams.values():  # the failing ones: other modules' tests find them answering again
            upstream.reset()
    gateway, worker = services["gateway"], services["worker"]
    urls = [service.url for service in services.values()]
    metrics = [Capture("metrics", f"{url}/metrics", httpx.get(f"{url}/metrics", timeout=10).text) for url in urls]
    redis = [redis_capture(redis_url, prefix) for prefix in (
        gateway.env["GATEWAY_REDIS_KEY_PREFIX"], services["trainer"].env["TRAINER_REDIS_KEY_PREFIX"],
        gateway.env["GATEWAY_BATCH_QUEUE"])]  # fmt: skip
    otlp_receiver.wait_for(lambda spans: {s.service for s in spans} >= set(SERVICES), timeout_s=20)
    stop()
    assert worker.process.poll() is not None
    spans = [Capture("span", f"{s.service} {s.name}", repr(s)) for s in otlp_receiver.snapshot()]

    def kind_of(path) -> str:
        return "log" if path.suffix == ".log" else "spool" if "spool" in path.parts else "file"

    gateway_db = str(root / "gateway.db")
    hashes = {"key hash", "revoked key hash", "identity token hash"}  # what the gateway's key store holds
    # Not Qdrant's storage: the one document ingested, in pages of 32 MiB (140 MB to read), where no token is sent.
    files = file_captures(root, kind_of, skip=[root / "retriever" / "data"])
    files = [replace(c, allowed=frozenset(hashes)) if c.where == gateway_db else c for c in files]
    for directory in (gateway.state_dir, services["feedback"].process.log_path.parent):
        files += file_captures(directory, kind_of)
    assert sum(1 for c in files if c.where == gateway_db) == 1 and "api_keys" in sqlite_rows(root / "gateway.db")

    key_secret = tokens["key-hashing secret"]
    in_play = [Secret(name, value, shown=KEY_SHOWN if value.startswith("sk-llmops-") else 0)
               for name, value in {**tokens, **made}.items()]  # fmt: skip
    in_play = [replace(s, shown=len("llmops-admin-") + 6) if s.name == "identity token" else s for s in in_play]
    for name in ("key", "revoked key", "identity token"):
        in_play.append(Secret(f"{name} hash", key_hash(made[name], key_secret)))
    captures: dict[str, list[Capture]] = {}
    for capture in [*recorder.captures, *metrics, *spans, *redis, *files]:
        captures.setdefault(capture.kind, []).append(capture)
    return in_play, captures


@pytest.mark.parametrize("kind", ["log", "metrics", "span", "http", "stored", "spool", "redis", "file"])
def test_no_secret_in_what_the_platform_wrote_or_answered(captured, kind):
    secrets_in_play, captures = captured
    assert captures.get(kind), f"nothing of kind {kind} was captured: the scan would pass for nothing"
    findings = scan(captures[kind], secrets_in_play)
    assert findings == [], "\n".join(f"{f.secret} ({f.form}) in {f.where}: …{f.context}…" for f in findings)
