"""Scores in the SQL store: recorded per request, rubric version and scorer; the online sample chosen; summaries
and agreement with people read back."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.sql import dialect_insert, utcnow
from llmops_feedback.evaluation import agreement as kappa
from llmops_feedback.evaluation import scorers
from llmops_feedback.evaluation.embeddings import EmbeddingsUnavailable, Similarity
from llmops_feedback.evaluation.judge import Item, Judgement
from llmops_feedback.evaluation.models import Score
from llmops_feedback.evaluation.rubrics import Needs, Rubric
from llmops_feedback.experiments.stats import Moments
from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord

DETERMINISTIC = "deterministic"


def judge_scorer(route: str) -> str:
    return f"judge:{route}"


def in_sample(request_id: str, rate: float) -> bool:
    """A stable share of requests, the same on every replica and pass: by a hash of the request id."""
    digest = int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "big")
    return digest / 2**64 < rate


def applicable(rubric: Rubric, item: Item) -> str | None:
    """Why the rubric cannot score the item, or None when it can."""
    if rubric.needs == Needs.REFERENCE and not item.reference:
        return "no reference: the request has no correction"
    if rubric.needs == Needs.SOURCES and not item.sources:
        return "no sources: the request was not answered from retrieved sources"
    return None


def score_deterministic(rubric: Rubric, item: Item, *, similarity: Similarity | None = None) -> Judgement:
    """Blocking: embedding similarity runs the model on this thread (call it from a thread in async code)."""
    if rubric.name == "embedding_similarity":
        try:
            if similarity is None:
                raise EmbeddingsUnavailable("no embedding model in this process")
            value = similarity.score(item.answer, item.reference or "")
        except EmbeddingsUnavailable as exc:
            return Judgement(None, None, str(exc), 1, 0, 0, ok=False)
        return Judgement(value, None, f"cosine similarity {value:.3f} to the reference", 1, 0, 0, ok=True)
    if rubric.name == "exact_match":
        scored = scorers.exact_match(item.answer, item.reference or "")
    elif rubric.name == "contains_reference":
        scored = scorers.contains_reference(item.answer, item.reference or "", question=item.question)
    elif rubric.name == "citation":
        scored = scorers.citation_check(item.answer, item.sources, question=item.question)
    else:
        raise ValueError(f"{rubric.key} is not a deterministic rubric")
    return Judgement(scored.score, None, scored.rationale, 1, 0, 0, ok=True)


async def save(
    session: AsyncSession,
    *,
    request_id: str,
    rubric: Rubric,
    scorer: str,
    origin: str,
    judgement: Judgement | None,
    status: str = "queued",
) -> None:
    """Stores a judgement with its ``status`` (``ok``, ``failed``: the judge gave no usable answer or could not be
    asked, ``skipped``: the rubric does not apply), replacing this scorer's earlier one; ``judgement=None``
    queues the request instead, leaving any judgement already made. The caller commits."""
    now = utcnow()
    row = {
        "request_id": request_id, "rubric": rubric.name, "rubric_version": rubric.version,
        "fingerprint": rubric.fingerprint, "scorer": scorer, "origin": origin, "status": "queued", "score": None,
        "raw_score": None, "rationale": None, "attempts": 0, "prompt_tokens": 0, "completion_tokens": 0,
        "created_at": now, "updated_at": now,
    }  # fmt: skip
    if judgement is not None:
        row |= {
            "status": status, "score": judgement.score, "raw_score": judgement.raw_score,
            "rationale": judgement.rationale, "attempts": judgement.attempts,
            "prompt_tokens": judgement.prompt_tokens, "completion_tokens": judgement.completion_tokens,
        }  # fmt: skip
    keys = ["request_id", "rubric", "rubric_version", "scorer"]
    statement = dialect_insert(session)(Score).values(row)
    if judgement is None:  # queuing again must not wipe a judgement already made
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    else:
        changed = {k: statement.excluded[k] for k in row if k not in (*keys, "created_at")}
        statement = statement.on_conflict_do_update(index_elements=keys, set_=changed)
    await session.execute(statement)


async def queue(
    session: AsyncSession, *, request_ids: list[str], rubric: Rubric, scorer: str, origin: str
) -> list[str]:
    """Adds ``queued`` rows for requests this scorer has no row for; returns those ids (the ones to send to the
    workers: a request another replica queued first is not sent twice). The caller commits once they are sent."""
    if not request_ids:
        return []
    now = utcnow()
    rows = [
        {"request_id": r, "rubric": rubric.name, "rubric_version": rubric.version, "fingerprint": rubric.fingerprint,
         "scorer": scorer, "origin": origin, "status": "queued", "attempts": 0, "prompt_tokens": 0,
         "completion_tokens": 0, "created_at": now, "updated_at": now}
        for r in dict.fromkeys(request_ids)
    ]  # fmt: skip
    keys = ["request_id", "rubric", "rubric_version", "scorer"]
    statement = dialect_insert(session)(Score).on_conflict_do_nothing(index_elements=keys).returning(Score.request_id)
    return list((await session.scalars(statement, rows)).all())  # one template, the rows as parameters (see ingest)


async def of_request(session: AsyncSession, *, request_id: str) -> list[Score]:
    query = select(Score).where(Score.request_id == request_id).order_by(Score.rubric, Score.scorer)
    return list((await session.scalars(query)).all())


async def load(session: AsyncSession, *, request_id: str) -> tuple[RequestRecord, Rating | None] | None:
    record = await session.get(RequestRecord, request_id)
    if record is None:
        return None
    current = await session.scalar(
        select(Rating).where(Rating.request_id == request_id, Rating.current.is_(True)).limit(1)
    )
    return record, current


async def route_logged(session: AsyncSession, *, route: str) -> bool:
    found = await session.scalar(select(RequestRecord.request_id).where(RequestRecord.route == route).limit(1))
    return found is not None


async def candidates(
    session: AsyncSession,
    *,
    rubric: Rubric,
    scorer: str,
    since: datetime,
    route: str | None = None,
    exclude_route: str | None = None,
    limit: int,
) -> list[str]:
    """Answered requests since ``since`` (newest first) this scorer has not scored with this rubric version."""
    scored = and_(
        Score.request_id == RequestRecord.request_id, Score.rubric == rubric.name,
        Score.rubric_version == rubric.version, Score.scorer == scorer,
    )  # fmt: skip
    query = (
        select(RequestRecord.request_id)
        .outerjoin(Score, scored)
        .where(Score.id.is_(None), RequestRecord.started_at >= since, RequestRecord.status < 400,
               RequestRecord.answer.is_not(None))
        .order_by(RequestRecord.started_at.desc())
        .limit(limit)
    )  # fmt: skip
    if route is not None:
        query = query.where(RequestRecord.route == route)
    if exclude_route is not None:
        query = query.where(RequestRecord.route != exclude_route)
    return list((await session.scalars(query)).all())


def _of(rubric: Rubric, scorer: str | None, route: str | None, since: datetime | None) -> list:
    where = [Score.rubric == rubric.name, Score.rubric_version == rubric.version]
    if scorer is not None:
        where.append(Score.scorer == scorer)
    if route is not None:
        where.append(RequestRecord.route == route)
    if since is not None:
        where.append(RequestRecord.started_at >= since)
    return where


@dataclass(frozen=True)
class VariantScores:
    route: str
    variant: str
    scorer: str
    scored: int
    failed: int  # the judge gave no usable answer, or could not be asked
    skipped: int  # the rubric did not apply (no reference, no sources)
    queued: int
    mean: float | None
    tokens: int
    histogram: list[int]  # scores in five bins of [0, 1]: 1..5 for a judge


async def summary(
    session: AsyncSession, *, rubric: Rubric, scorer: str | None, route: str | None, since: datetime | None
) -> list[VariantScores]:
    query = (
        select(RequestRecord.route, RequestRecord.variant, Score.scorer, Score.status, Score.score,
               Score.prompt_tokens + Score.completion_tokens)
        .join(RequestRecord, RequestRecord.request_id == Score.request_id)
        .where(*_of(rubric, scorer, route, since))
    )  # fmt: skip
    groups: dict[tuple, list] = {}
    for route_, variant, scorer_, status, score, tokens in (await session.execute(query)).all():
        groups.setdefault((route_, variant, scorer_), []).append((status, score, tokens))
    out = []
    for (route_, variant, scorer_), rows in sorted(groups.items()):
        values = [s for status, s, _ in rows if status == "ok" and s is not None]
        histogram = [0] * 5
        for value in values:
            histogram[min(4, int(value * 5))] += 1
        out.append(VariantScores(
            route_, variant, scorer_, len(values), sum(1 for r in rows if r[0] == "failed"),
            sum(1 for r in rows if r[0] == "skipped"), sum(1 for r in rows if r[0] == "queued"), sum(values) / len(values) if values else None,
            sum(r[2] for r in rows), histogram,
        ))  # fmt: skip
    return out


async def agreement(
    session: AsyncSession, *, rubric: Rubric, scorer: str | None, route: str | None, since: datetime | None
) -> kappa.Agreement:
    """The scorer's pass (score >= the rubric's ``pass_at``) against the current human thumbs, request by request."""
    query = (
        select(Rating.rating, Score.score)
        .join(RequestRecord, RequestRecord.request_id == Score.request_id)
        .join(Rating, and_(Rating.request_id == Score.request_id, Rating.current.is_(True)))
        .where(*_of(rubric, scorer, route, since), Score.status == "ok", Score.score.is_not(None))
    )
    pairs = [(rating == "up", score >= rubric.pass_at) for rating, score in (await session.execute(query)).all()]
    return kappa.cohen_kappa(pairs)


async def arm_moments(
    session: AsyncSession, *, rubric: Rubric, route: str, variant: str, version: str | None, since: datetime
) -> Moments:
    """The scores of an experiment arm's requests (any scorer of the rubric's version), summed: their count, total and
    total of squares, what the judge guardrail (the mean) and a judge-score primary metric (the mean and its
    variance) read."""
    where = [RequestRecord.route == route, RequestRecord.variant == variant, RequestRecord.started_at >= since,
             Score.rubric == rubric.name, Score.rubric_version == rubric.version, Score.status == "ok"]  # fmt: skip
    if version:
        where.append(RequestRecord.model_version == version)
    sums = select(func.count(Score.score), func.sum(Score.score), func.sum(Score.score * Score.score))
    query = sums.join(RequestRecord, RequestRecord.request_id == Score.request_id).where(*where)
    n, total, squares = (await session.execute(query)).one()
    return Moments(int(n or 0), float(total or 0.0), float(squares or 0.0))
