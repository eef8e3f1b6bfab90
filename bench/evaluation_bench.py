"""Evaluation benchmark: RAG quality on invented facts, and an LLM judge's throughput and agreement, on CPU.

    .venv/bin/python bench/evaluation_bench.py [--questions-per-fact 2] [--concurrency 4] [--out bench/results]

Real parts only: vLLM (CPU) serving the bundled SmolLM2-135M behind the inference service, the retriever (Qdrant
Edge, MiniLM embeddings) and the gateway, all as processes. The eval set is the demo's: 24 invented facts (a
person, a length, a capital... no model can know them) among 24 distractor documents on the same places and topics
(libs/cli/src/llmops_cli/demo/data), each fact asked in up to 3 wordings.

1. RAG configurations (template x top_k x hybrid search), each question through the gateway with ``rag``:
   retrieval hit@1 (the first source is the fact's document) and grounded answers (the answer contains the expected
   fact, normalised). Greedy decoding, 48 tokens.
2. The correctness judge (rubric correctness@v1, the bundled model through the gateway, JSON-schema output) on the
   answers of the best configuration, reference = the expected fact: judgements per second at ``--concurrency``,
   tokens per judgement, failed judgements, and its agreement (Cohen's kappa) with the grounded label, the stand-in
   for a person's thumbs here.
Results: bench/results/evaluation_bench.json and .png.
"""

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from importlib.resources import files
from pathlib import Path

import httpx

from llmops_cli.infra import find_or_start_redis
from llmops_feedback.evaluation.agreement import cohen_kappa
from llmops_feedback.evaluation.judge import Item, judge
from llmops_feedback.evaluation.rubrics import RUBRICS
from llmops_feedback.evaluation.scorers import normalise
from llmops_testkit.gateway import Gateway, gateway_env, new_secrets
from llmops_testkit.inference import InferenceService, inference_env, prepare_bundled_model
from llmops_testkit.retriever import Retriever, new_tokens, retriever_env

CONFIGS = [  # (template, top_k, hybrid)
    ("grounded-v1", 2, False),  # the plain pipeline: context in the system message, top-2
    ("grounded-v1", 1, False),
    ("context-first-v1", 2, False),
    ("context-first-v1", 1, False),
    ("context-first-v1", 1, True),
    ("context-first-v1", 2, True),
]


def load_demo() -> tuple[list[dict], list[dict]]:
    data = files("llmops_cli.demo") / "data"
    facts = [json.loads(line) for line in (data / "facts.jsonl").read_text().splitlines() if line.strip()]
    distractors = [json.loads(line) for line in (data / "distractors.jsonl").read_text().splitlines() if line.strip()]
    return facts, distractors


def contains(answer: str, expected: str) -> bool:
    return f" {normalise(expected)} " in f" {normalise(answer)} "


async def ask_all(gateway_url: str, key: str, route: str, questions: list[dict], *, concurrency: int) -> list[dict]:
    """Every question on the route (whose RAG settings retrieve for each request)."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=gateway_url, headers={"authorization": f"Bearer {key}"}, timeout=600) as http:

        async def one(q: dict) -> dict:
            body = {"model": route, "messages": [{"role": "user", "content": q["question"]}], "temperature": 0,
                    "max_tokens": 48}  # fmt: skip
            async with gate:
                started = time.perf_counter()
                response = await http.post("/v1/chat/completions", json=body)
                elapsed = time.perf_counter() - started
            response.raise_for_status()
            data = response.json()
            answer = data["choices"][0]["message"]["content"]
            first = (data.get("sources") or [{}])[0].get("document_id")
            return {**q, "answer": answer, "first_source": first, "hit": first == q["fact"],
                    "grounded": contains(answer, q["expected"]), "latency_s": elapsed}  # fmt: skip

        return await asyncio.gather(*(one(q) for q in questions))


async def judge_all(
    gateway_url: str, key: str, route: str, rows: list[dict], *, concurrency: int
) -> tuple[list, float]:
    gate = asyncio.Semaphore(concurrency)
    rubric = RUBRICS["correctness"]
    async with httpx.AsyncClient(base_url=gateway_url, headers={"authorization": f"Bearer {key}"}, timeout=600) as http:

        async def one(row: dict):
            async with gate:
                return await judge(http, route=route, rubric=rubric,
                                   item=Item(row["question"], row["answer"], row["expected"]))  # fmt: skip

        started = time.perf_counter()
        judgements = await asyncio.gather(*(one(r) for r in rows))
        return judgements, time.perf_counter() - started


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, confusion) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    configs = result["configs"]
    labels = [f"{c['template']}\ntop_k={c['top_k']}{' hybrid' if c['hybrid'] else ''}" for c in configs]
    xs = range(len(configs))
    bars.bar([x - 0.2 for x in xs], [c["hit_at_1"] for c in configs], 0.4, label="retrieval hit@1")
    bars.bar([x + 0.2 for x in xs], [c["grounded"] for c in configs], 0.4, label="answers with the fact")
    for x, c in zip(xs, configs, strict=True):
        bars.text(x - 0.2, c["hit_at_1"] + 0.01, f"{c['hit_at_1']:.0%}", ha="center", fontsize=7)
        bars.text(x + 0.2, c["grounded"] + 0.01, f"{c['grounded']:.0%}", ha="center", fontsize=7)
    bars.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    bars.axhline(0.90, color="grey", linestyle="--", linewidth=1)
    bars.set_xticks(list(xs), labels, fontsize=7)
    bars.set_ylim(0, 1.1)
    bars.set_title(f"RAG on {result['questions']} questions about 24 invented facts (SmolLM2-135M, CPU)")
    bars.legend(fontsize=8, loc="lower right")
    j = result["judge"]
    cells = [[j["agreement"]["confusion"][h][s] for s in ("up", "down")] for h in ("up", "down")]
    confusion.imshow(cells, cmap="Blues")
    for h in range(2):
        for s in range(2):
            confusion.text(s, h, str(cells[h][s]), ha="center", va="center")
    confusion.set_xticks([0, 1], ["judge pass", "judge fail"])
    confusion.set_yticks([0, 1], ["has the fact", "lacks it"])
    kappa = j["agreement"]["kappa"]
    confusion.set_title(
        f"correctness judge (SmolLM2): kappa {kappa if kappa is None else round(kappa, 2)}, n={j['agreement']['n']}\n"
        f"{j['judgements_per_s']:.2f} judgements/s at concurrency {j['concurrency']}, "
        f"{j['tokens_per_judgement']:.0f} tokens each",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions-per-fact", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    facts, distractors = load_demo()
    questions = [
        {"fact": f["id"], "question": q, "expected": f["expected"]}
        for f in facts
        for q in f["questions"][: args.questions_per_fact]
    ]
    started_at, load_at_start = time.time(), round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="llmops-eval-bench-") as tmp:
        state = Path(tmp)
        prepare_bundled_model()
        redis = find_or_start_redis(state / "redis", die_with_parent=True)
        inference = InferenceService(
            env=inference_env(state_dir=state / "inference", admin_token=new_secrets()[0]),
            state_dir=state / "inference",
        )
        retriever = Retriever(
            env=retriever_env(store="edge", state_dir=state / "retriever", admin_token=new_tokens()[0],
                              read_token=new_tokens()[1]),
            state_dir=state / "retriever",
        )  # fmt: skip
        admin_token, key_secret = new_secrets()
        gw_env = gateway_env(sql_url=f"sqlite+aiosqlite:///{state / 'gateway.db'}", redis_url=redis.url,
                             state_dir=state / "gateway", admin_token=admin_token, key_secret=key_secret)  # fmt: skip
        gateway = Gateway(
            env={**gw_env, **retriever.gateway_env(), "GATEWAY_UPSTREAM_READ_TIMEOUT_S": "600",
                 "GATEWAY_LOG_LEVEL": "WARNING"},
            state_dir=state / "gateway",
        )  # fmt: skip
        try:
            inference.start()
            retriever.start()
            gateway.start()
            documents = [{"id": d["id"], "text": d["document"]} for d in [*facts, *distractors]]
            collections = {}
            for hybrid in (False, True):
                name = f"facts-{'hybrid' if hybrid else 'dense'}-{uuid.uuid4().hex[:4]}"
                retriever.create_collection(name, hybrid=hybrid)
                retriever.ingest(name, documents)
                collections[hybrid] = name
            variants = [{"name": "base", "upstream": f"{inference.url}/v1", "model": inference.base_model}]
            route = gateway.put_route(variants=variants)  # the judge's: no retrieval
            key = gateway.create_key()[1]
            configs = []
            for template, top_k, hybrid in CONFIGS:
                rag = {"collection": collections[hybrid], "top_k": top_k, "template": template}
                rag_route = gateway.put_route(variants=variants, rag=rag)
                began = time.perf_counter()
                rows = asyncio.run(ask_all(gateway.url, key, rag_route, questions, concurrency=args.concurrency))
                took = time.perf_counter() - began
                config = {
                    "template": template, "top_k": top_k, "hybrid": hybrid,
                    "hit_at_1": sum(r["hit"] for r in rows) / len(rows),
                    "grounded": sum(r["grounded"] for r in rows) / len(rows),
                    "answers_per_s": len(rows) / took, "rows": rows,
                }  # fmt: skip
                configs.append(config)
                print(f"{template} top_k={top_k} hybrid={hybrid}: hit@1 {config['hit_at_1']:.1%}, "
                      f"grounded {config['grounded']:.1%} ({took:.0f}s)", flush=True)  # fmt: skip
            best = max(configs, key=lambda c: (c["grounded"], c["hit_at_1"]))
            judgements, took = asyncio.run(
                judge_all(gateway.url, key, route, best["rows"], concurrency=args.concurrency)
            )
            ok = [j for j in judgements if j.ok]
            pairs = [(r["grounded"], j.score >= RUBRICS["correctness"].pass_at)
                     for r, j in zip(best["rows"], judgements, strict=True) if j.ok]  # fmt: skip
            agreement = cohen_kappa(pairs)
            tokens = sum(j.prompt_tokens + j.completion_tokens for j in judgements)
            judge_result = {
                "rubric": RUBRICS["correctness"].key, "on": f"{best['template']} top_k={best['top_k']} hybrid={best['hybrid']}",
                "concurrency": args.concurrency, "judgements": len(judgements), "failed": len(judgements) - len(ok),
                "seconds": took, "judgements_per_s": len(judgements) / took,
                "tokens_per_judgement": tokens / len(judgements),
                "attempts_mean": sum(j.attempts for j in judgements) / len(judgements),
                "score_histogram": [sum(1 for j in ok if j.raw_score == s) for s in range(1, 6)],
                "agreement": agreement.to_dict(),
            }  # fmt: skip
            print(f"judge: {judge_result['judgements_per_s']:.2f}/s, kappa {agreement.kappa}, {agreement.trust}")
        finally:
            gateway.stop()
            retriever.stop()
            inference.stop()
            redis.stop()
    result = {
        "benchmark": "evaluation",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_at_start": load_at_start},
        "started_at": started_at,
        "model": "SmolLM2-135M-Instruct (bundled), vLLM CPU, greedy, 48 tokens",
        "questions": len(questions),
        "configs": configs,
        "best": {k: v for k, v in best.items() if k != "rows"},
        "judge": judge_result,
    }
    (args.out / "evaluation_bench.json").write_text(json.dumps(result, indent=2))
    plot(result, args.out / "evaluation_bench.png")
    print(f"wrote {args.out / 'evaluation_bench.json'} and {args.out / 'evaluation_bench.png'}")


if __name__ == "__main__":
    main()
