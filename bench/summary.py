"""Rewrites the benchmark table of a Markdown file from bench/results/*.json (``make bench`` runs it).

    .venv/bin/python bench/summary.py README.md

The table sits between ``<!-- bench:start -->`` and ``<!-- bench:end -->``; a result file that is missing
leaves its rows out, so the table always shows what was measured and nothing else.
"""

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


_REFERENCES = {
    "python_floor": "reference: the least a Python proxy costs (bench/python_floor_proxy.py, no features)",
    "nginx": "reference: nginx, compiled, 1 worker, no features",
    "haproxy": "reference: HAProxy, compiled, 1 thread, no features",
    "litellm": "reference: LiteLLM's proxy, 1 worker (what users would pick instead)",
    "gateway_w1_aiohttp": "1 worker(s), asyncio upstream, upstream client on aiohttp (bench/aiohttp_upstream.py)",
}


def _describe(path: str) -> str:
    """``gateway_w2_fastapi`` -> "2 worker(s), FastAPI upstream"."""
    if path in _REFERENCES:
        return _REFERENCES[path]
    workers = path.removeprefix("gateway_w").split("_")[0]
    upstream = "FastAPI upstream" if path.endswith("_fastapi") else "asyncio upstream"
    key = ", key without limits (no quota check)" if path.endswith("_nolimits") else ""
    return f"{workers} worker(s), {upstream}{key}"


def _cpu(row: dict) -> str:
    cpu = row.get("cpu_us_per_request")
    if not cpu:
        return ""
    return f"; CPU/request: proxy {cpu['proxy']:.0f} µs, upstream {cpu['upstream']:.0f}, load generator {cpu['load_generator']:.0f}"


def _ratios(row: dict) -> str:
    parts = []
    if "ratio_vs_litellm" in row:
        parts.append(f"{row['ratio_vs_litellm']:.0f}x LiteLLM")
    if "ratio_vs_gateway" in row:
        parts.append(f"{row['ratio_vs_gateway']:.2f}x the gateway's own client")
    return "".join(f"; {part}" for part in parts)


def gateway_rows(r: dict) -> list[tuple[str, str, str]]:
    seq, streams = r["sequential"], r["streaming"]
    rows = [
        (
            "gateway",
            "added latency, sequential (p50 / p99)",
            (
                f"{seq['added_gateway']['p50_ms']:.2f} / {seq['added_gateway']['p99_ms']:.2f} ms "
                f"(direct {seq['direct']['p50_ms']:.2f} / {seq['direct']['p99_ms']:.2f} ms)"
            ),
        ),
    ]
    if "added_litellm" in seq:
        litellm = seq["added_litellm"]
        rows.append(
            (
                "gateway",
                "reference: LiteLLM's proxy, added latency, sequential (p50 / p99)",
                f"{litellm['p50_ms']:.2f} / {litellm['p99_ms']:.2f} ms",
            )
        )
    rows += [
        (
            "gateway",
            "quota check (p50; a busy key mostly spends its local lease, else one Redis round trip)",
            f"{seq['quota_check_p50_ms']:.2f} ms",
        ),
    ]
    for row in r["concurrency"]:
        if "reference" in row:  # a proxy measured against a direct path
            direct = next(
                d for d in r["concurrency"] if d["path"] == row["reference"] and d["concurrency"] == row["concurrency"]
            )
            rows.append(
                (
                    "gateway",
                    f"throughput at concurrency {row['concurrency']}, {_describe(row['path'])}",
                    (
                        f"{row['throughput_rps']:.0f} req/s = {row['throughput_vs_direct']:.2f}x direct "
                        f"({direct['throughput_rps']:.0f}); added p99 {row['added_p99_ms']:.1f} ms"
                        + _ratios(row)
                        + _cpu(row)
                    ),
                )
            )
    added = streams["added"]
    rows.append(
        (
            "gateway",
            f"{streams['streams']} concurrent streams: added TTFT / inter-chunk (p50 / p99)",
            (
                f"{added['ttft_p50_ms']:.1f} / {added['ttft_p99_ms']:.1f} ms; "
                f"{added['gap_p50_ms']:.2f} / {added['gap_p99_ms']:.2f} ms"
            ),
        )
    )
    return rows


def http_client_rows(r: dict) -> list[tuple[str, str, str]]:
    return [
        (
            "gateway",
            f"upstream client {row['client']}, {row['concurrency']} in flight",
            f"{row['throughput_rps']:.0f} req/s, p99 {row['p99_ms']:.2f} ms, {row['cpu_us_per_request']:.0f} µs CPU/request",
        )
        for row in r["results"]
    ]


def inference_rows(r: dict) -> list[tuple[str, str, str]]:
    rows = []
    for row in r["results"]:
        rows.append(
            (
                "inference",
                f"{row['path']}, {row['model']}, concurrency {row['concurrency']}",
                f"{row['output_tokens_per_s']:.0f} output tokens/s, TTFT p50 {row['ttft_p50_s'] * 1000:.0f} ms",
            )
        )
    return rows


def retriever_rows(r: dict) -> list[tuple[str, str, str]]:
    rows = []
    for row in r["results"]:
        search = row["search_embedding_excluded"]
        rows.append(
            (
                "retriever",
                f"{row['engine']}, {row['chunks']:,} chunks: search p50 / p99, recall@10",
                f"{search['p50_ms']:.2f} / {search['p99_ms']:.2f} ms, {row['recall_at_10']:.3f}",
            )
        )
    return rows


def trainer_rows(r: dict) -> list[tuple[str, str, str]]:
    return [
        (
            "trainer",
            f"LoRA rank {row['rank']}, {row['device']}, {row['torch_threads']} thread(s)",
            f"{row['tokens_per_s']:.0f} training tokens/s, peak RSS {row['peak_rss_mib']:.0f} MiB",
        )
        for row in r["results"]
    ]


def evaluation_rows(r: dict) -> list[tuple[str, str, str]]:
    rows = [
        (
            "evaluation",
            (
                f"RAG {c['template']} top_k={c['top_k']}{' hybrid' if c['hybrid'] else ''}, {r['questions']} questions on "
                "24 invented facts, SmolLM2 through the gateway"
            ),
            f"retrieval hit@1 {c['hit_at_1']:.0%}, answers with the fact {c['grounded']:.0%}",
        )
        for c in r["configs"]
    ]
    j = r["judge"]
    kappa = j["agreement"]["kappa"]
    rows.append(
        (
            "evaluation",
            f"{j['rubric']} judge (SmolLM2, CPU) at concurrency {j['concurrency']}",
            (
                f"{j['judgements_per_s']:.2f} judgements/s, {j['tokens_per_judgement']:.0f} tokens each, "
                f"{j['failed']} failed of {j['judgements']}; kappa with the fact check "
                f"{'-' if kappa is None else f'{kappa:.2f}'} (n={j['agreement']['n']})"
            ),
        )
    )
    return rows


def slowloris_rows(r: dict) -> list[tuple[str, str, str]]:
    rows = []
    for row in r["rows"]:
        deadline = row["header_timeout_s"]
        setting = "no head deadline (uvicorn alone)" if deadline == 0 else f"head deadline {deadline:g} s (default 10)"
        what = f"{row['trickling_connections']} slowloris clients for {r['seconds']:g} s, {setting}"
        result = (
            f"each kept {row['held_s_p50']:.1f} s (p50), {row['held_at_end']} descriptors still held at the end; "
            f"normal requests p50 {row['normal_p50_ms_before']:.1f} -> {row['normal_p50_ms_during']:.1f} ms, "
            f"{row['normal_failed_during']} failed"
        )
        rows.append(("gateway", what, result))
    return rows


def tracing_rows(r: dict) -> list[tuple[str, str, str]]:
    off = r["off"]
    rows = []
    for mode, label in (("on", "tracing on, every trace kept"), ("sampled_10pct", "tracing on, 10% of traces kept")):
        row, ratio = r[mode], r["ratio_to_off"][mode]
        what = f"{label}, against off ({r['concurrency']} clients; sequential p50)"
        result = (
            f"{ratio['throughput']:.2f}x of off's throughput ({row['throughput_rps']:.0f} vs "
            f"{off['throughput_rps']:.0f} req/s); p50 {row['sequential_p50_ms']:.2f} vs {off['sequential_p50_ms']:.2f} ms"
        )
        rows.append(("gateway", what, result))
    return rows


def _soak_memory(name: str, trend: dict) -> str:
    """A service's RSS at the end and its trend over the last half; the training pool's between jobs (its memory
    follows the jobs)."""
    between = name == "trainer_pool"
    slope = trend.get("slope_last_half_between_jobs_mb_per_min") if between else trend["slope_last_half_mb_per_min"]
    shown = "n/a" if slope is None else f"{slope:+.2f} MB/min"
    return f"{name} {trend['end_mb']:.0f} MB ({shown}{' between jobs' if between else ''})"


def soak_rows(r: dict) -> list[tuple[str, str, str]]:
    buckets = r["latency_buckets"]
    first, last = buckets[0], buckets[-1]
    p99 = ", ".join(
        f"{kind} {first[kind]['p99_ms']} -> {last[kind]['p99_ms']} ms" for kind in ("plain", "rag") if kind in first
    )
    memory = ", ".join(_soak_memory(name, t) for name, t in r["memory_trend"].items())
    jobs = r.get("training_jobs")  # a soak of the whole platform; without: gateway + feedback only (older results)
    where = "the whole platform (fake model upstream)" if jobs is not None else "gateway + feedback"
    what = (
        f"soak, {r['duration_s'] / 60:.3g} min of mixed traffic ({', '.join(r['mix'])}"
        f"{', LoRA jobs' if jobs is not None else ''}) through {where}, {r['concurrency']} clients"
    )
    training = ""
    if jobs is not None:
        done = [j for j in jobs if j["state"] == "succeeded"]
        training = f"; training jobs: {len(done)} of {len(jobs)} succeeded"
        if done:
            training += f" (longest {max(j['duration_s'] for j in done):.0f} s from submission)"
    result = (
        f"{r['requests']} requests ({r['throughput_rps']:.0f}/s), error rate {r['error_rate']:.2%}; p99 first / last "
        f"{r.get('bucket_s', 15):g} s: {p99}{training}; RSS at the end and trend over the last half: {memory}"
    )
    return [("platform" if jobs is not None else "gateway", what, result)]


def batch_rows(r: dict) -> list[tuple[str, str, str]]:
    online, *batches = r["results"]
    what = (
        f"batch output tokens/s against online through the gateway at concurrency 32 ({r['prompts']} prompts of "
        f"{r['max_tokens']} tokens, vLLM CPU)"
    )
    parts = [f"online {online['output_tokens_per_s']:.0f}"]
    parts += [
        f"{b['name']} {b['output_tokens_per_s']:.0f} ({b['vs_online']:.2f}x)" for b in batches if "vs_online" in b
    ]
    return [("batch workers", what, "; ".join(parts))]


def embeddings_rows(r: dict) -> list[tuple[str, str, str]]:
    what = f"embeddings/s through the gateway against the retriever's embedder called directly ({r['model']})"
    parts = [
        f"batch {row['batch']}: {row['gateway']['embeddings_per_s']:.0f} vs {row['direct']['embeddings_per_s']:.0f} "
        f"({row['gateway_share']:.2f}x)"
        for row in r["results"]
    ]
    return [("gateway", what, "; ".join(parts))]


def feedback_ingest_rows(r: dict) -> list[tuple[str, str, str]]:
    what = (
        f"request-log ingest, records stored/s ({r['batches']} batches of 1-500 records), this ingest against the "
        "statement compiled per batch it replaced"
    )
    parts = [
        f"{backend} {b['executemany']['records_per_s']} vs {b['values']['records_per_s']} ({b['speedup']:.1f}x), "
        f"RSS growth {b['executemany']['rss_growth_mb']:.0f} vs {b['values']['rss_growth_mb']:.0f} MB"
        for backend, b in r["backends"].items()
    ]
    return [("feedback", what, "; ".join(parts))]


def table() -> str:
    rows = []
    for name, make in (
        ("gateway_bench", gateway_rows),
        ("http_client_bench", http_client_rows),
        ("inference_bench", inference_rows),
        ("retriever_bench", retriever_rows),
        ("trainer_bench", trainer_rows),
        ("evaluation_bench", evaluation_rows),
        ("feedback_ingest_bench", feedback_ingest_rows),
        ("slowloris_bench", slowloris_rows),
        ("tracing_bench", tracing_rows),
        ("soak_bench", soak_rows),
        ("batch_bench", batch_rows),
        ("embeddings_bench", embeddings_rows),
    ):
        if (result := _load(name)) is not None:
            rows += make(result)
    lines = ["| part | measured | result |", "|---|---|---|"]
    lines += [f"| {part} | {what} | {value} |" for part, what, value in rows]
    return "\n".join(lines)


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    text = target.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{target} has no {START} ... {END} section")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    target.write_text(f"{head}{START}\n{table()}\n{END}{tail}")
    print(f"updated the benchmark table in {target}")


if __name__ == "__main__":
    main()
