"""What tracing costs the gateway's completion path: the same gateway with tracing off (no OTLP endpoint: nothing
installed), on (every request a server span and a GenAI span, exported over OTLP/HTTP to a receiver on loopback
that counts what arrives) and on with 10% of traces sampled (``OTEL_TRACES_SAMPLER=parentbased_traceidratio``),
side by side in one run.

    .venv/bin/python bench/tracing_bench.py [--requests 3000] [--concurrency 16]

A real gateway process (``python -m llmops_gateway``, SQLite, real Redis, JSON-lines request log) in front of a
fake upstream; the load generator of bench/loadgen.py sends chat completions, sequentially (latency) and at
``--concurrency`` (throughput). Results: bench/results/tracing_bench.json (ratios to off). The receiver shares
this process with the load generator (2 cores: everything competes), so the ratios are an upper bound on the cost.
"""

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import closed_loop, encode_post, percentile_ms

from llmops_cli.infra import find_or_start_redis
from llmops_testkit.fake_upstream import FakeUpstream
from llmops_testkit.gateway import Gateway, chat_body, gateway_env, new_secrets, variant
from llmops_testkit.otlp import OtlpReceiver

RESULTS = Path(__file__).parent / "results"


def measure(gateway: Gateway, upstream: FakeUpstream, requests: int, concurrency: int) -> dict:
    route = gateway.put_route(variants=[variant("a", upstream)])
    _, key = gateway.create_key()
    host, port = "127.0.0.1", int(gateway.url.rsplit(":", 1)[1])
    raw = encode_post(host, "/v1/chat/completions", orjson.dumps(chat_body(route)), {"authorization": f"Bearer {key}"})
    asyncio.run(closed_loop(host, port, raw, concurrency=4, requests=300))  # warm-up
    sequential = asyncio.run(closed_loop(host, port, raw, concurrency=1, requests=requests // 3))
    loaded = asyncio.run(closed_loop(host, port, raw, concurrency=concurrency, requests=requests))
    return {
        "sequential_p50_ms": round(percentile_ms(sequential.latencies_s, 50), 3),
        "sequential_p99_ms": round(percentile_ms(sequential.latencies_s, 99), 3),
        "throughput_rps": round(loaded.throughput, 1),
        "loaded_p50_ms": round(percentile_ms(loaded.latencies_s, 50), 3),
        "errors": sequential.errors + loaded.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tracing-bench-") as tmp:
        tmp = Path(tmp)
        redis = find_or_start_redis(tmp / "infra", die_with_parent=True)
        upstream, receiver = FakeUpstream("bench").start(), OtlpReceiver(decode_spans=False).start()
        try:
            for mode in ("off", "on", "sampled_10pct"):
                state = tmp / f"gw-{mode}"
                state.mkdir(parents=True)
                admin, secret = new_secrets()
                env = gateway_env(
                    sql_url=f"sqlite+aiosqlite:///{state / 'gw.db'}",
                    redis_url=redis.url,
                    state_dir=state,
                    admin_token=admin,
                    key_secret=secret,
                )
                env["GATEWAY_LOG_LEVEL"] = "WARNING"
                if mode != "off":
                    env.update(receiver.env("llmops-gateway"))
                    env["OTEL_BSP_SCHEDULE_DELAY"] = "5000"  # the SDK's default, not the tests' 100 ms
                if mode == "sampled_10pct":
                    env.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.1")
                gateway = Gateway(env=env, state_dir=state).start()
                try:
                    rows[mode] = measure(gateway, upstream, args.requests, args.concurrency)
                finally:
                    gateway.stop()
                print(mode, json.dumps(rows[mode]), flush=True)
        finally:
            upstream.stop()
            receiver.stop()
            redis.stop()
        exports, exported_bytes = receiver.requests, receiver.bytes
    off = rows["off"]
    result = {
        "benchmark": "tracing",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "requests": args.requests,
        "concurrency": args.concurrency,
        **rows,
        "otlp_exports": exports,
        "otlp_bytes": exported_bytes,
        "ratio_to_off": {
            mode: {
                "throughput": round(row["throughput_rps"] / off["throughput_rps"], 3),
                "sequential_p50": round(row["sequential_p50_ms"] / off["sequential_p50_ms"], 3),
            }
            for mode, row in rows.items()
            if mode != "off"
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tracing_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratio_to_off"]))


if __name__ == "__main__":
    main()
