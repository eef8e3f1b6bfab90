"""Retriever benchmark: ingest rate, search latency and HNSW recall, per engine, at 10k and 100k chunks.

    .venv/bin/python bench/retriever_bench.py [--sizes 10000 100000] [--queries 300]

What is measured, through the retriever's own store classes (the code the service runs, without HTTP):
- ingest chunks/s, embedding excluded: upserting precomputed vectors in the service's batch size;
- ingest chunks/s, embedding included: chunk-sized texts (~200 tokens, the default chunk) embedded with
  all-MiniLM-L6-v2 and upserted into the collection at that size (the embedding cost does not depend on it);
- search latency p50/p99, top-10, embedding excluded (precomputed query vectors) and included (the query
  embedded first, as a search request does);
- recall@10 of the indexed search against exact search over the same points;
- for Qdrant Edge, the HNSW build time (``optimize()`` in a child process, as the service does it).
The vectors are real MiniLM embeddings, one short sentence per chunk (so that 100k of them embed in minutes on
2 cores): ``--corpus generated`` (the default) makes sentences from a small grammar about a harbour town;
``--corpus docstrings`` takes real English sentences from the docstrings of the installed Python packages (a
harder test of the index's recall; extracting them takes a few minutes). Queries are other sentences of the
same kind. qdrant-client's local mode is brute force and
stands in for a Qdrant server: its figures are not a server's.
Results: bench/results/retriever_bench.json and .png.
"""

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from llmops_retriever.embedding.models import BUILTIN, EmbeddingModels
from llmops_retriever.store.base import CollectionSpec, Distance, PointIn, Query
from llmops_retriever.store.edge import EdgeStore
from llmops_retriever.store.qdrant import QdrantStore

RESULTS = Path(__file__).parent / "results"
CACHE = Path(os.environ.get("LLMOPS_BENCH_CACHE", Path.home() / ".cache" / "llmops" / "bench"))
BATCH = 256  # the service's upsert batch (documents.service.EMBED_SLICE)
TOP_K = 10

_WORDS = {
    "who": "the harbour master|a ferry captain|the lighthouse keeper|a net mender|the museum curator|a fish trader|"
    "the school teacher|a crane operator|the weather station|a salvage diver|the customs officer|a boat builder",
    "did": "recorded|repaired|inspected|sold|photographed|measured|painted|moved|catalogued|reported|ordered|found",
    "what": "the old winch|a cracked lens|forty crates of cod|the tide gauge|a brass bell|the north pier lamps|"
    "a drifting buoy|the ice machine|twelve lobster pots|the slipway rails|a storm warning|the fuel pump",
    "where": "at Port Verrinow|near Selbrook|on Strand Isle|by the south breakwater|in the smokehouse|"
    "at Kelmouth pier|behind the chandlery|under the fish market|on the ferry deck|in the net loft",
    "when": "before dawn|in the spring gales|after the regatta|during the fog|on market day|at low tide|"
    "in late autumn|after the storm|on a calm evening|in the first frost",
}


def docstring_sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct English sentences from the docstrings of the installed packages, in a seeded random order."""
    import ast
    import re
    import sysconfig

    found: dict[str, None] = {}
    for path in sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
                doc = ast.get_docstring(node) or ""
                for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                    if 40 <= len(sentence) <= 300 and sentence[0].isupper() and sentence.count(" ") >= 5:
                        found.setdefault(sentence, None)
        if len(found) >= 3 * n:  # enough to choose from
            break
    if len(found) < n:
        raise SystemExit(f"only {len(found)} docstring sentences found; ask for fewer")
    pool = list(found)
    random.Random(seed).shuffle(pool)
    return pool[:n]


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    parts = {k: v.split("|") for k, v in _WORDS.items()}
    return [
        f"{rng.choice(parts['who']).capitalize()} {rng.choice(parts['did'])} {rng.choice(parts['what'])} "
        f"{rng.choice(parts['where'])} {rng.choice(parts['when'])} (entry {rng.randrange(10**6)})."
        for _ in range(n)
    ]


def chunk_texts(n: int) -> list[str]:
    """Texts of about 200 tokens: what one default chunk holds."""
    return [" ".join(sentences(10, seed=10_000 + i)) for i in range(n)]


def embed_cached(models: EmbeddingModels, texts: list[str], name: str) -> tuple[np.ndarray, float]:
    """Embeddings (cached on disk between runs) and the texts/s of computing them (None when cached)."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]  # other texts, other file
    path = CACHE / f"{name}-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.load(path), None
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    vectors = models.get(BUILTIN).embed(texts)
    rate = len(texts) / (time.perf_counter() - started)
    np.save(path, vectors)
    return vectors, rate


def spec(name: str) -> CollectionSpec:
    return CollectionSpec(
        name=name,
        embedding_model=BUILTIN,
        dimension=384,
        distance=Distance.cosine,
        hybrid=False,
        chunk_size=200,
        chunk_overlap=40,
        created_at=time.time(),
    )


def points(vectors: np.ndarray, texts: list[str], first: int) -> list[PointIn]:
    return [
        PointIn(
            id=str(uuid.uuid5(uuid.NAMESPACE_OID, str(first + i))),
            dense=v.tolist(),
            sparse=None,
            payload={
                "document_id": f"doc-{first + i}",
                "chunk_index": 0,
                "text": t,
                "metadata": {},
                "ingested_at": 0.0,
            },
        )
        for i, (v, t) in enumerate(zip(vectors, texts, strict=True))
    ]


def percentiles(samples: list[float]) -> dict:
    ms = sorted(s * 1000 for s in samples)
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3)}


async def measure(store, name: str, *, n: int, vectors, texts, queries, query_texts, models, chunk_sample) -> dict:
    result: dict = {"chunks": n}
    await store.create_collection(spec(name))
    started = time.perf_counter()
    for i in range(0, n, BATCH):
        await store.upsert(name, points(vectors[i : i + BATCH], texts[i : i + BATCH], i))
    result["ingest_chunks_per_s_embedding_excluded"] = round(n / (time.perf_counter() - started), 1)

    if isinstance(store, EdgeStore):
        started = time.perf_counter()
        await store.optimize(name)
        result["index_build_s"] = round(time.perf_counter() - started, 1)
        result["index"] = await store.index_status(name)

    embedder = models.get(BUILTIN)
    for q in queries[:20]:  # warm-up
        await store.search(name, Query(dense=q.tolist(), sparse=None, limit=TOP_K))
    latencies, found = [], 0
    for q in queries:
        started = time.perf_counter()
        fast = await store.search(name, Query(dense=q.tolist(), sparse=None, limit=TOP_K))
        latencies.append(time.perf_counter() - started)
        exact = await store.search(name, Query(dense=q.tolist(), sparse=None, limit=TOP_K, exact=True))
        found += len({h.id for h in fast} & {h.id for h in exact})
    result["search_embedding_excluded"] = percentiles(latencies)
    result["recall_at_10"] = round(found / (TOP_K * len(queries)), 4)

    latencies = []
    for text in query_texts:
        started = time.perf_counter()
        vector = (await asyncio.to_thread(embedder.embed, [text], purpose="query"))[0]
        await store.search(name, Query(dense=vector.tolist(), sparse=None, limit=TOP_K))
        latencies.append(time.perf_counter() - started)
    result["search_embedding_included"] = percentiles(latencies)

    started = time.perf_counter()
    for i in range(0, len(chunk_sample), BATCH):
        batch = chunk_sample[i : i + BATCH]
        batch_vectors = await asyncio.to_thread(embedder.embed, batch)
        await store.upsert(name, points(batch_vectors, batch, n + i))
    result["ingest_chunks_per_s_embedding_included"] = round(len(chunk_sample) / (time.perf_counter() - started), 1)
    await store.delete_collection(name)
    return result


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    labels = [f"{r['engine']}\n{r['chunks'] // 1000}k" for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for offset, key, colour in (
        (-0.2, "search_embedding_excluded", "tab:blue"),
        (0.2, "search_embedding_included", "tab:orange"),
    ):
        for k, (pct, alpha) in enumerate((("p50_ms", 1.0), ("p99_ms", 0.45))):
            axes[0].bar(
                x + offset,
                [r[key][pct] for r in rows],
                0.4,
                color=colour,
                alpha=alpha,
                label=f"{pct[:3]} {'with' if 'included' in key else 'without'} embedding",
            )
    axes[0].set_yscale("log"), axes[0].set_ylabel("ms"), axes[0].set_title("search latency, top-10")
    axes[0].set_xticks(x, labels), axes[0].legend(fontsize=7)
    axes[1].bar(x - 0.2, [r["ingest_chunks_per_s_embedding_excluded"] for r in rows], 0.4, label="embedding excluded")
    axes[1].bar(x + 0.2, [r["ingest_chunks_per_s_embedding_included"] for r in rows], 0.4, label="embedding included")
    axes[1].set_yscale("log"), axes[1].set_ylabel("chunks/s"), axes[1].set_title("ingest")
    axes[1].set_xticks(x, labels), axes[1].legend(fontsize=7)
    axes[2].bar(x, [r["recall_at_10"] for r in rows], 0.5, color="tab:green")
    axes[2].axhline(0.95, color="grey", linestyle="--", linewidth=1)
    axes[2].set_ylim(0.8, 1.0), axes[2].set_title("recall@10 vs exact search"), axes[2].set_xticks(x, labels)
    fig.suptitle(f"retriever on {report['machine']['cpus']} CPUs ({report['machine']['note']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--engines", nargs="+", default=["edge", "qdrant-local"])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--chunk-sample", type=int, default=512, help="~200-token chunks for the with-embedding ingest")
    parser.add_argument("--corpus", choices=["generated", "docstrings"], default="generated")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    models = EmbeddingModels()
    largest = max(args.sizes)
    if args.corpus == "docstrings":
        pool = docstring_sentences(largest + args.queries, seed=1)
        texts, query_texts = pool[:largest], pool[largest:]
    else:
        texts, query_texts = sentences(largest, seed=1), sentences(args.queries, seed=2)
    vectors, corpus_rate = embed_cached(models, texts, args.corpus)
    queries, _ = embed_cached(models, query_texts, f"{args.corpus}-queries")
    chunk_sample = chunk_texts(args.chunk_sample)
    print(
        f"corpus: {largest} {args.corpus} sentences"
        + (f", embedded at {corpus_rate:.0f}/s" if corpus_rate else " (cached)")
    )

    results = []
    for engine in args.engines:
        for n in args.sizes:
            work = Path(tempfile.mkdtemp(prefix="retriever-bench-"))
            store = EdgeStore(work / "edge", index_check_s=3600) if engine == "edge" else QdrantStore(url=":memory:")
            await store.start()
            try:
                print(f"{engine} at {n} chunks ...", flush=True)
                row = await measure(
                    store,
                    f"bench{n}",
                    n=n,
                    vectors=vectors[:n],
                    texts=texts[:n],
                    queries=queries,
                    query_texts=query_texts,
                    models=models,
                    chunk_sample=chunk_sample,
                )
                results.append({"engine": engine, **row})
                print(json.dumps(results[-1]), flush=True)
            finally:
                await store.aclose()
                shutil.rmtree(work, ignore_errors=True)

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
            "note": "shared development machine; other services' tests may have run meanwhile",
        },
        "settings": {
            "corpus": args.corpus,
            "top_k": TOP_K,
            "queries": args.queries,
            "upsert_batch": BATCH,
            "hnsw_m": 16,
            "hnsw_ef_construct": 100,
            "hnsw_ef": 128,
            "chunk_sample": args.chunk_sample,
            "corpus_embeddings_per_s": corpus_rate,
        },
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retriever_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "retriever_bench.png")
    print(f"wrote {args.out / 'retriever_bench.json'} and .png")


if __name__ == "__main__":
    asyncio.run(main())
