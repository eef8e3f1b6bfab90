"""The soak's measurements and report: memory of each service's process tree, the trend fit, the summary, the plot."""

from pathlib import Path

KINDS = ("plain", "streamed", "rag", "rating")  # the request kinds, in the order the report shows them
BUCKET_S = 15.0  # latency percentiles per this much time
OK = (200, 201, 202)


def process_children() -> dict[int, list[int]]:
    """Every process's children, from /proc (one read per sample: services fork pools and engines)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def rss_mb(pids: list[int], children: dict[int, list[int]], *, descend: bool = True) -> float:
    """Resident memory of ``pids`` (and, with ``descend``, all their descendants: uvicorn or gunicorn workers, vLLM),
    in MB; 0 once gone. RSS, not PSS: a service's PSS falls when another service maps the same libraries (torch in
    the retriever and in each training job), which would read as a trend of its own."""
    total_kb, stack = 0, list(pids)
    while stack:
        pid = stack.pop()
        if descend:
            stack += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total_kb += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total_kb / 1024


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return round(cov / var * 60, 3) if var else None


def percentile_ms(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000, 2) if ordered else None


def latency_row(results: list[tuple[float, str, int, float]]) -> dict:
    """p50 / p99 per kind of the answered requests among ``results``."""
    row = {}
    for kind in KINDS:
        latencies = [r[3] for r in results if r[1] == kind and r[2] in OK]
        row[kind] = {"p50_ms": percentile_ms(latencies, 50), "p99_ms": percentile_ms(latencies, 99)}
    return row


def job_spans(jobs: list[dict], duration_s: float) -> list[tuple[float, float]]:
    """(from, to) seconds of each training job that ran, within the traffic's time."""
    return [
        (job["started_s"], min(job.get("finished_s") or duration_s, duration_s))
        for job in jobs
        if job.get("started_s") is not None and job["started_s"] < duration_s
    ]


def summarize(results, memory: dict, jobs: list[dict], duration_s: float, settings: dict) -> dict:
    errors: dict[str, int] = {}
    for _, kind, status, _ in results:
        if status not in OK:
            errors[f"{kind} {status}"] = errors.get(f"{kind} {status}", 0) + 1
    buckets = []
    for start in range(0, int(duration_s - BUCKET_S) + 1, int(BUCKET_S)):  # whole buckets only: no stub at the end
        inside = [r for r in results if start <= r[0] < start + BUCKET_S]
        if inside:
            buckets.append({"from_s": start, "requests": len(inside), **latency_row(inside)})
    outcomes: dict[str, int] = {}
    for job in jobs:
        outcomes[job["state"]] = outcomes.get(job["state"], 0) + 1
    return {
        "duration_s": round(duration_s, 1),
        "bucket_s": BUCKET_S,
        **settings,
        "requests": len(results),
        "requests_by_kind": {kind: sum(1 for r in results if r[1] == kind) for kind in KINDS},
        "throughput_rps": round(len(results) / duration_s, 1),
        "errors": errors,
        "error_rate": round(sum(errors.values()) / max(1, len(results)), 5),
        "latency_buckets": buckets,
        "training_jobs": jobs,
        "training_outcomes": outcomes,
        "memory_measure": "RSS (MB) summed over each service's process tree",
        "memory_trend": memory_trend(memory, jobs, duration_s),
        "memory_samples": memory,
    }


def memory_trend(memory: dict, jobs: list[dict], duration_s: float) -> dict:
    """Each service's memory at the start, end and peak, and its least-squares slope over the last half."""
    half, spans = duration_s / 2, job_spans(jobs, duration_s)

    def last_half(samples, *, between_jobs: bool) -> list:
        # 0 MB: no process at that instant (the training pool between one job's process and the next), not memory.
        return [
            s for s in samples
            if s[0] >= half and s[1] > 0 and not (between_jobs and any(a <= s[0] <= b for a, b in spans))
        ]  # fmt: skip

    return {
        name: {
            "start_mb": samples[0][1],
            "end_mb": samples[-1][1],
            "peak_mb": max(m for _, m in samples),
            "slope_last_half_mb_per_min": slope_mb_per_min(last_half(samples, between_jobs=False)),
            # The training pool's memory follows the jobs: its leak signal is its level between them.
            "slope_last_half_between_jobs_mb_per_min": slope_mb_per_min(last_half(samples, between_jobs=True)),
        }
        for name, samples in memory.items()
    }


def _slope(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f} MB/min"


def plot(summary: dict, path: Path) -> None:
    """Latency per kind over time; each service's RSS change since the start (its trend over the last half in the
    legend); the training pool's RSS, which follows the jobs (shaded where one runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, mem, pool) = plt.subplots(3, 1, figsize=(10, 11), sharex=True, gridspec_kw={"height_ratios": [3, 3, 2]})
    for kind in KINDS:
        rows = [b for b in summary["latency_buckets"] if b[kind]["p99_ms"] is not None]
        xs = [b["from_s"] + BUCKET_S / 2 for b in rows]
        (line,) = lat.plot(xs, [b[kind]["p50_ms"] for b in rows], label=f"{kind} p50")
        lat.plot(xs, [b[kind]["p99_ms"] for b in rows], linestyle="--", color=line.get_color(), label=f"{kind} p99")
    lat.set_yscale("log")
    lat.set_ylabel(f"latency per {BUCKET_S:g} s (ms, log)")
    lat.legend(fontsize=7, ncol=4)
    jobs = summary["training_jobs"]
    done = sum(1 for j in jobs if j["state"] == "succeeded")
    lat.set_title(
        f"Soak: {summary['requests']} requests ({summary['throughput_rps']:.0f}/s), {summary['error_rate']:.2%} "
        f"errors; {done} of {len(jobs)} training jobs succeeded (shaded: a job running)",
        fontsize=10,
    )
    trends = summary["memory_trend"]
    for name, samples in summary["memory_samples"].items():
        axis = pool if name == "trainer_pool" else mem
        trend = trends[name]
        if axis is pool:
            label = f"{name}, between jobs {_slope(trend['slope_last_half_between_jobs_mb_per_min'])}, last half"
            axis.plot([t for t, _ in samples], [m for _, m in samples], color="grey", label=label)
        else:
            label = f"{name} {trend['end_mb']:.0f} MB ({_slope(trend['slope_last_half_mb_per_min'])}, last half)"
            axis.plot([t for t, _ in samples], [m - samples[0][1] for _, m in samples], label=label)
    mem.set_ylabel("RSS change since the start (MB)")
    mem.legend(fontsize=7, ncol=2)
    pool.set_ylabel("training job process RSS (MB)")
    pool.set_xlabel("seconds")
    pool.legend(fontsize=7)
    for start, end in job_spans(jobs, summary["duration_s"]):
        for axis in (lat, mem, pool):
            axis.axvspan(start, end, color="grey", alpha=0.12)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
