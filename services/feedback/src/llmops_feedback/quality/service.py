"""Quality by route and variant over a time window, with a Wilson 95% interval on the thumbs-up rate."""

import math
from datetime import datetime

from sqlalchemy import and_, func, select
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
    session: AsyncSession, *, since: datetime, until: datetime, route: str | None = None, variant: str | None = None
) -> QualitySummary:
    key = (RequestRecord.route, RequestRecord.variant)
    traffic = _window(
        select(
            *key,
            func.count(),
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
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r, v, rating, n in (await session.execute(votes)).all():
        counts.setdefault((r, v), {})[rating] = n
    variants = []
    for r, v, requests, latency, ttft, prompt_tokens, completion_tokens in (await session.execute(traffic)).all():
        up, down = counts.get((r, v), {}).get("up", 0), counts.get((r, v), {}).get("down", 0)
        interval = wilson_interval(up, up + down)
        variants.append(
            VariantQuality(
                route=r,
                variant=v,
                requests=requests,
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
    variants.sort(key=lambda q: (q.route, q.variant))
    return QualitySummary(since=since, until=until, variants=variants)
