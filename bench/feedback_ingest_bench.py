"""The feedback service's request-log ingest: records per second and memory, this tree's ``ingest`` against the form
it replaced, on SQLite and PostgreSQL, in the same run.

    .venv/bin/python bench/feedback_ingest_bench.py [--batches 300] [--rounds 3]

The two forms insert the same rows with the same ``ON CONFLICT DO NOTHING ... RETURNING``:
- ``executemany`` (``llmops_feedback.records.service.ingest``): one statement, the rows as its parameters, which
  SQLAlchemy sends as multi-row INSERTs built from one compiled template ("insertmanyvalues"), 50 rows each
  (``llmops_common.sql.INSERT_PAGE_ROWS``: each connection keeps every row count's statement prepared);
- ``values`` (the reference, as ingest was until December 2026): ``insert(...).values(rows)``, a statement with a
  bind parameter per cell, compiled again for every batch (SQLAlchemy does not cache multi-row VALUES).

Each measurement is a process of its own, so its memory is its own: it migrates a fresh database with the service's
migrations, then ingests ``--batches`` batches of random sizes 1 to 500 (the gateway's batch cap; the same sizes for
every measurement) and reports the seconds spent in ingest, records per second, and its RSS before the first batch,
after the last and at its high-water mark. Rounds alternate which form goes first. Results:
bench/results/feedback_ingest_bench.json and .png.
"""

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
FORMS = ("executemany", "values")
BATCH_CAP = 500  # the gateway's FeedbackSink batch_size


def _memory_mb() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {name: int(status[field].split()[0]) / 1024 for name, field in (("rss", "VmRSS"), ("hwm", "VmHWM"))}


def _record(rng: random.Random):
    from llmops_common.contracts.requestlog import RequestLogRecord

    now = time.time()
    words = " ".join(rng.choice(("the", "fact", "answer", "model", "route", "token")) for _ in range(40))
    return RequestLogRecord.model_validate({
        "request_id": uuid.uuid4().hex, "key_id": "key-1", "route": "support", "variant": "base", "model": "m",
        "kind": "chat", "stream": rng.random() < 0.5, "status": 200, "prompt": words, "answer": words[::-1],
        "usage": {"prompt_tokens": 40, "completion_tokens": 40}, "latency_ms": 12.5, "started_at": now,
        "finished_at": now,
    })  # fmt: skip


async def _ingest_values(session, *, records, store_text: bool) -> list:
    """The reference: ingest as it was, a statement compiled for each batch."""
    from llmops_common.sql import dialect_insert, utcnow
    from llmops_feedback.records.models import RequestRecord
    from llmops_feedback.records.service import _row

    received_at = utcnow()
    unique = {r.request_id: r for r in records}
    rows = [_row(r, store_text=store_text, received_at=received_at) for r in unique.values()]
    statement = (
        dialect_insert(session)(RequestRecord)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(RequestRecord.request_id)
    )
    inserted = {row[0] for row in (await session.execute(statement)).all()}
    await session.commit()
    return [record for request_id, record in unique.items() if request_id in inserted]


async def _measure(form: str, url: str, batches: int, seed: int) -> dict:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from llmops_common.sql import make_engine
    from llmops_feedback.db import migrate
    from llmops_feedback.records import service

    ingest = service.ingest if form == "executemany" else _ingest_values
    engine = make_engine(url)
    await migrate(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    rng = random.Random(seed)
    sizes = [rng.randint(1, BATCH_CAP) for _ in range(batches)]
    before, spent, stored = _memory_mb(), 0.0, 0
    for size in sizes:
        records = [_record(rng) for _ in range(size)]
        started = time.perf_counter()
        async with sessions() as session:
            stored += len(await ingest(session, records=records, store_text=True))
        spent += time.perf_counter() - started
    after = _memory_mb()
    await engine.dispose()
    assert stored == sum(sizes), (stored, sum(sizes))  # every record stored once, by either form
    return {"form": form, "records": stored, "seconds": round(spent, 3), "records_per_s": round(stored / spent),
            "rss_before_mb": round(before["rss"], 1), "rss_after_mb": round(after["rss"], 1),
            "rss_peak_mb": round(after["hwm"], 1)}  # fmt: skip


def _run_child(form: str, url: str, batches: int, seed: int) -> dict:
    argv = [sys.executable, __file__, "--child", form, url, str(batches), str(seed)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(result["backends"])
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.38
    for i, form in enumerate(FORMS):
        xs = [b + (i - 0.5) * width for b in range(len(backends))]
        summary = [result["backends"][b][form] for b in backends]
        speed.bar(xs, [s["records_per_s"] for s in summary], width, label=form)
        memory.bar(xs, [s["rss_growth_mb"] for s in summary], width, label=form)
    for axis, title in ((speed, "records stored per second (median)"), (memory, "RSS growth over the run, MB")):
        axis.set_xticks(range(len(backends)), backends)
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=8)
    fig.suptitle(f"feedback ingest: {result['batches']} batches of 1-{BATCH_CAP} records per measurement")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _summarize(runs: list[dict]) -> dict:
    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    return {
        "records_per_s": median([r["records_per_s"] for r in runs]),
        "rss_growth_mb": round(median([r["rss_after_mb"] - r["rss_before_mb"] for r in runs]), 1),
        "rss_peak_mb": median([r["rss_peak_mb"] for r in runs]),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("FORM", "URL", "BATCHES", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        form, url, batches, seed = args.child
        print(json.dumps(asyncio.run(_measure(form, url, int(batches), int(seed)))))
        return

    from llmops_cli.infra import find_or_start_postgres
    from llmops_testkit.backends import create_database, drop_database

    result = {"batches": args.batches, "rounds": args.rounds, "cpus": os.cpu_count(), "backends": {}}
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        postgres = find_or_start_postgres(Path(tmp) / "pg")
        server, base = postgres.url, postgres.async_url.rsplit("/", 1)[0]
        made: list[str] = []
        try:
            for backend in ("sqlite", "postgresql"):
                runs = {form: [] for form in FORMS}
                for round_ in range(args.rounds):
                    order = FORMS if round_ % 2 == 0 else FORMS[::-1]
                    for form in order:
                        if backend == "sqlite":
                            url = f"sqlite+aiosqlite:///{tmp}/{form}-{round_}.db"
                        else:
                            made.append(asyncio.run(create_database(server, prefix="ingest_bench")))
                            url = f"{base}/{made[-1]}"
                        run = _run_child(form, url, args.batches, seed=round_)
                        runs[form].append(run)
                        print(f"{backend:10} round {round_ + 1}/{args.rounds} {form:11} "
                              f"{run['records_per_s']:6} records/s, RSS {run['rss_before_mb']:.0f} -> "
                              f"{run['rss_after_mb']:.0f} MB", flush=True)  # fmt: skip
                summary = {form: _summarize(r) for form, r in runs.items()}
                summary["speedup"] = round(
                    summary["executemany"]["records_per_s"] / summary["values"]["records_per_s"], 2
                )
                result["backends"][backend] = summary
        finally:
            for name in made:
                asyncio.run(drop_database(server, name))
            postgres.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "feedback_ingest_bench.json").write_text(json.dumps(result, indent=2))
    _plot(result, RESULTS / "feedback_ingest_bench.png")
    for backend, summary in result["backends"].items():
        print(f"{backend}: executemany {summary['executemany']['records_per_s']} records/s, "
              f"values {summary['values']['records_per_s']} ({summary['speedup']}x)")  # fmt: skip


if __name__ == "__main__":
    main()
