"""Quality by route and variant over a time window, with a Wilson 95% interval on the thumbs-up rate."""

import math
from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_feedback.quality.schemas import QualitySummary, VariantQuality
from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord

_Z95 = 1.959963984540054


def wilson_interval(up: int, total: int, z: float = _Z95) -> tuple[float, float] | None:
    """The Wilson score interval for ``up`` successes out of ``total``: honest for small counts, unlike p ± z·se."""
    if total == 0:
        return None
    p = up / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (0.0 if up == 0 else max(0.0, centre - half)), (1.0 if up == total else min(1.0, centre + half))


def _window(query, *, since: datetime, until: datetime, route: str | None, variant: str | None):
    query = query.where(RequestRecord.started_at >= since, RequestRecord.started_at < until)
    if route is not None:
        query = query.where(RequestRecord.route == route)
    if variant is not None:
        query = query.where(RequestRecord.variant == variant)
    return query


async def summarize(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    route: str | None = None,
    variant: str | None = None,
    by_prompt: bool = False,
) -> QualitySummary:
    """One row per route and variant; ``by_prompt``: per route, variant, prompt name and version (an alias moved
    within the window, or two prompt versions as two variants, show apart)."""
    key = (RequestRecord.route, RequestRecord.variant)
    if by_prompt:
        key += (RequestRecord.prompt_name, RequestRecord.prompt_version)
    traffic = _window(
        select(
            *key,
            func.count(),
            func.coalesce(func.sum(case((RequestRecord.status >= 400, 1), else_=0)), 0),
            func.avg(RequestRecord.latency_ms),
            func.avg(RequestRecord.ttft_ms),
            func.coalesce(func.sum(RequestRecord.prompt_tokens), 0),
            func.coalesce(func.sum(RequestRecord.completion_tokens), 0),
        ).group_by(*key),
        since=since,
        until=until,
        route=route,
        variant=variant,
    )
    votes = _window(
        select(*key, Rating.rating, func.count())
        .join(Rating, and_(Rating.request_id == RequestRecord.request_id, Rating.current.is_(True)))
        .group_by(*key, Rating.rating),
        since=since,
        until=until,
        route=route,
        variant=variant,
    )
    counts: dict[tuple, dict[str, int]] = {}
    for *group, rating, n in (await session.execute(votes)).all():
        counts.setdefault(tuple(group), {})[rating] = n
    variants = []
    for row in (await session.execute(traffic)).all():
        group = tuple(row[: len(key)])
        requests, errors, latency, ttft, prompt_tokens, completion_tokens = row[len(key) :]
        up, down = counts.get(group, {}).get("up", 0), counts.get(group, {}).get("down", 0)
        interval = wilson_interval(up, up + down)
        prompt = group[2:] if by_prompt else (None, None)
        variants.append(
            VariantQuality(
                route=group[0],
                variant=group[1],
                prompt_name=prompt[0],
                prompt_version=prompt[1],
                requests=requests,
                errors=int(errors),
                rated=up + down,
                up=up,
                down=down,
                up_rate=up / (up + down) if up + down else None,
                up_rate_low=interval[0] if interval else None,
                up_rate_high=interval[1] if interval else None,
                avg_latency_ms=latency,
                avg_ttft_ms=ttft,
                prompt_tokens=int(prompt_tokens),
                completion_tokens=int(completion_tokens),
            )
        )
    variants.sort(key=lambda q: (q.route, q.variant, q.prompt_name or "", q.prompt_version or ""))
    return QualitySummary(since=since, until=until, variants=variants)
