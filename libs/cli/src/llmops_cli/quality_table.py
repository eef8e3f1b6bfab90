"""The ``llmops feedback summary`` table, readable in an 80-column terminal.

Why it looks like this: ten columns (route and variant each in their own) left a few characters per column at 80
columns, so rich cut every header and number to a stub. Now routes head their own rows and variants sit under them
in one name column that wraps (names are the only values allowed to); ``rated`` is gone (it is ``up + down``);
counts above a million are abbreviated; the tokens column appears only where there is room. Numbers and headers
never wrap or shrink. ``--json`` keeps every field.
"""

from itertools import groupby

from rich import box
from rich.table import Table
from rich.text import Text

WIDE = 100  # from this many columns on, the tokens column fits too


def count(value: int) -> str:
    """Exact with thousands separators up to 999,999 (7 characters at most), then abbreviated: 1.2M, 456.7M, 7.9B."""
    if value < 1_000_000:
        return f"{value:,}"
    if value < 999_950_000:  # would round to 1000.0M
        return f"{value / 1e6:.1f}M"
    return f"{value / 1e9:,.1f}B"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def interval(low: float | None, high: float | None) -> str:
    """``87–91%``: one percent sign for both ends saves a column's worth of characters."""
    if low is None or high is None:
        return "-"
    return f"{100 * low:.0f}–{100 * high:.0f}%"


def latency(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def quality_table(variants: list[dict], *, title: str, width: int) -> Table:
    """``variants``: the feedback service's ``/v1/quality`` rows, in its order (by route, then variant)."""
    wide = width >= WIDE
    table = Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True
    )
    table.add_column("route / variant", overflow="fold", min_width=12)
    for header in ("reqs", "up", "down", "up rate", "95% CI", "latency", *(("tokens in/out",) if wide else ())):
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    for route, rows in groupby(variants, key=lambda q: q["route"]):
        table.add_row(Text(route, style="bold"))
        for q in rows:
            prompt = q.get("prompt_name")
            if prompt:  # split by prompt (--by-prompt): the version a row counts
                prompt = f" {prompt}" + (f" v{q['prompt_version']}" if q.get("prompt_version") else "")
            cells = [
                Text("  " + q["variant"] + (prompt or "")),
                count(q["requests"]),
                count(q["up"]),
                count(q["down"]),
                percent(q["up_rate"]),
                interval(q["up_rate_low"], q["up_rate_high"]),
                latency(q["avg_latency_ms"]),
            ]
            if wide:
                cells.append(f"{count(q['prompt_tokens'])}/{count(q['completion_tokens'])}")
            table.add_row(*cells)
    return table
