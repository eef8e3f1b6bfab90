"""LoRA training throughput and peak memory of the trainer's training loop on the bundled model, per LoRA rank.

    .venv/bin/python bench/trainer_bench.py [--ranks 8 16] [--steps 20] [--batch-size 4] [--seq-len 256]
                                            [--threads 0 1] [--out bench/results]

Each rank runs in a fresh process (so its peak RSS is its own) through ``llmops_trainer.training.loop.run``, the
code a worker runs: the bundled SmolLM2-135M-Instruct, q/v LoRA adapters, fp32 on CPU (bf16 on CUDA where one is
visible), a synthetic chat dataset of fixed size. Reported: non-padding training tokens per second over the whole
``Trainer.train()`` and in steady state (steps after the second), seconds per step, model load time, RSS when
training starts and peak RSS (and peak CUDA memory on GPU). Writes ``trainer_bench.json`` and ``trainer_bench.png``.
"""

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "model",
    "adapter",
    "token",
    "layer",
    "gradient",
    "batch",
    "cluster",
    "request",
    "latency",
    "answer",
    "question",
    "user",
    "system",
    "data",
    "platform",
    "service",
    "deploy",
    "metric",
    "alert",
    "route",
    "variant",
    "rank",
    "weight",
    "learning",
    "rate",
    "memory",
    "vector",
    "search",
]


def synthetic_examples(n: int, *, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)

    def sentence(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."

    return [
        [
            {"role": "user", "content": " ".join(sentence(12) for _ in range(2))},
            {"role": "assistant", "content": " ".join(sentence(14) for _ in range(rng.randint(6, 10)))},
        ]
        for _ in range(n)
    ]


def run_one(rank: int, steps: int, batch_size: int, seq_len: int, threads: int) -> dict:
    """In the child process: one training run, measured."""
    import torch

    from llmops_models.prepare import bundled_model_dir, prepare
    from llmops_trainer.jobs.schemas import LoraSpec, TrainingSpec
    from llmops_trainer.training import device, loop

    prepare(progress=False)
    step_times: list[float] = []
    rss_at_start: list[float] = []

    def rss_mib() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    class Hooks:
        last = None

        def should_stop(self) -> bool:
            return False

        def progress(self, **fields) -> None:
            if fields.get("step"):
                now = time.perf_counter()
                if self.last is not None:
                    step_times.append(now - self.last)
                self.last = now
            elif "total_steps" in fields:
                self.last = time.perf_counter()
                rss_at_start.append(rss_mib())  # the interpreter, torch, the fp32 model: before any step

        def metrics(self, values, step) -> None:
            pass

    plan = device.plan("auto", "none", threads=threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        outcome = loop.run(
            source=str(bundled_model_dir()),
            train_examples=synthetic_examples(max(64, batch_size * steps)),
            eval_examples=[],
            lora=LoraSpec(r=rank, alpha=2 * rank, dropout=0.05, target_modules=["q_proj", "v_proj"]),
            training=TrainingSpec(max_seq_length=seq_len, batch_size=batch_size, learning_rate=2e-4, max_steps=steps),
            device_plan=plan,
            out_dir=Path(out),
            hooks=Hooks(),
        )
        adapter_bytes = sum(p.stat().st_size for p in outcome.adapter_dir.iterdir())
    total_s = time.perf_counter() - started
    steady = step_times[2:] or step_times
    tokens_per_step = outcome.tokens / max(1, outcome.steps)
    return {
        "rank": rank,
        "device": plan.device,
        "dtype": plan.dtype,
        "torch_threads": torch.get_num_threads(),
        "steps": outcome.steps,
        "batch_size": batch_size,
        "max_seq_length": seq_len,
        "train_tokens": outcome.tokens,
        "train_runtime_s": round(outcome.runtime_s, 2),
        "tokens_per_s": round(outcome.tokens_per_s, 1),
        "steady_tokens_per_s": round(tokens_per_step / (sum(steady) / len(steady)), 1),
        "s_per_step_median": round(sorted(step_times)[len(step_times) // 2], 3),
        "setup_s": round(total_s - outcome.runtime_s, 1),
        "train_loss": round(outcome.train_loss, 4),
        "adapter_bytes": adapter_bytes,
        "rss_at_train_start_mib": round(rss_at_start[0], 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"r={r['rank']}\n{r['torch_threads']} thr" for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.bar(labels, [r["steady_tokens_per_s"] for r in results], color="#4c72b0")
    left.set_title("training tokens/s (steady state)")
    right.bar(labels, [r["peak_rss_mib"] for r in results], color="#dd8452")
    right.set_title("peak RSS (MiB)")
    for axis, key in ((left, "steady_tokens_per_s"), (right, "peak_rss_mib")):
        for i, r in enumerate(results):
            axis.annotate(f"{r[key]:.0f}", (i, r[key]), ha="center", va="bottom")
    first = results[0]
    fig.suptitle(
        f"LoRA q/v on SmolLM2-135M, {first['device']} {first['dtype']}, batch {first['batch_size']}, "
        f"seq ≤ {first['max_seq_length']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[0], help="torch CPU threads (0: one per core)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_one(args.child, args.steps, args.batch_size, args.seq_len, args.threads[0])))
        return

    results = []
    load_before = os.getloadavg()
    for threads, rank in ((t, r) for t in args.threads for r in args.ranks):
        print(f"rank {rank}, threads {threads or 'default'}: {args.steps} steps ...", file=sys.stderr, flush=True)
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(rank),
                "--steps",
                str(args.steps),
                "--batch-size",
                str(args.batch_size),
                "--seq-len",
                str(args.seq_len),
                "--threads",
                str(threads),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TQDM_DISABLE": "1"},
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"  {result['steady_tokens_per_s']} tokens/s, {result['s_per_step_median']} s/step, "
            f"peak RSS {result['peak_rss_mib']} MiB",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "trainer LoRA training throughput",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "results": results,
    }
    (args.out / "trainer_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, args.out / "trainer_bench.png")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
