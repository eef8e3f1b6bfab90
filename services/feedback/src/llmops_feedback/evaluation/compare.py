"""The offline gate: before a challenger gets live traffic, the eval set's questions (or recently logged prompts)
are answered by the champion's and the challenger's routes, and each pair is judged: pairwise by an LLM judge
(positions swapped), or by a rubric scoring both answers. The challenger is blocked when its losses exceed its
wins by more than the margin (as shares of the rows judged)."""

import asyncio
import logging
from dataclasses import dataclass

import httpx

from llmops_feedback.evaluation import pairwise, rubrics
from llmops_feedback.evaluation.embeddings import Similarity
from llmops_feedback.evaluation.judge import Item, JudgeError, gateway_error, judge
from llmops_feedback.evaluation.service import applicable, score_deterministic

logger = logging.getLogger(__name__)
PAIRWISE = "pairwise"
_EPSILON = 1e-9


@dataclass(frozen=True)
class Spec:
    champion_route: str
    challenger_route: str
    rubric: str  # "pairwise" or a rubric's name
    judge_route: str | None
    margin: float
    max_tokens: int
    attempts: int
    structured: bool
    similarity: Similarity | None = None


async def answer(client: httpx.AsyncClient, *, route: str, question: str, max_tokens: int) -> tuple[str, int]:
    body = {"model": route, "messages": [{"role": "user", "content": question}], "temperature": 0,
            "max_tokens": max_tokens}  # fmt: skip
    try:
        response = await client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as exc:
        raise JudgeError(503, f"gateway unreachable: {exc!r}", code="judge_unreachable") from None
    if response.status_code != 200:
        raise gateway_error(response)
    data = response.json()
    text = ((data.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
    return text, int((data.get("usage") or {}).get("total_tokens") or 0)


async def _scored(
    client: httpx.AsyncClient, spec: Spec, rubric: rubrics.Rubric, item: Item
) -> tuple[float | None, int]:
    if applicable(rubric, item) is not None:
        return None, 0
    if rubric.kind == "deterministic":
        return (await asyncio.to_thread(score_deterministic, rubric, item, similarity=spec.similarity)).score, 0
    judged = await judge(client, route=spec.judge_route, rubric=rubric, item=item, attempts=spec.attempts,
                         structured=spec.structured)  # fmt: skip
    return judged.score, judged.prompt_tokens + judged.completion_tokens


async def row(client: httpx.AsyncClient, spec: Spec, item: dict) -> dict:
    """One question through both routes and the judge. A route or judge that cannot be asked leaves the row with
    ``outcome`` None and the reason (the gateway's status and message)."""
    question, reference = item["question"], item.get("reference")
    out = {"question": question, "reference": reference, "champion_answer": None, "challenger_answer": None,
           "outcome": None, "detail": "", "tokens": 0}  # fmt: skip
    try:
        (champion, t1), (challenger, t2) = await asyncio.gather(
            answer(client, route=spec.champion_route, question=question, max_tokens=spec.max_tokens),
            answer(client, route=spec.challenger_route, question=question, max_tokens=spec.max_tokens),
        )
        out.update(champion_answer=champion, challenger_answer=challenger, tokens=t1 + t2)
        if spec.rubric == PAIRWISE:
            first, swapped = await asyncio.gather(
                pairwise.ask(client, route=spec.judge_route, question=question, reference=reference, a=champion,
                             b=challenger, attempts=spec.attempts, structured=spec.structured),
                pairwise.ask(client, route=spec.judge_route, question=question, reference=reference, a=challenger,
                             b=champion, attempts=spec.attempts, structured=spec.structured),
            )  # fmt: skip
            out["outcome"] = pairwise.combine(first.winner, swapped.winner)
            out["detail"] = f"champion as A: {first.winner}; challenger as A: {swapped.winner}"
            out["tokens"] += first.tokens + swapped.tokens
        else:
            rubric = rubrics.get(spec.rubric)
            sources = item.get("sources") or []
            (a, ta), (b, tb) = await asyncio.gather(
                _scored(client, spec, rubric, Item(question, champion, reference, sources)),
                _scored(client, spec, rubric, Item(question, challenger, reference, sources)),
            )
            out["tokens"] += ta + tb
            if a is not None and b is not None:
                out["outcome"] = "win" if b > a + _EPSILON else "loss" if a > b + _EPSILON else "tie"
            out["detail"] = f"{rubric.key}: champion {a}, challenger {b}"
    except JudgeError as exc:
        out["detail"] = str(exc)
    return out


@dataclass(frozen=True)
class Outcome:
    wins: int
    ties: int
    losses: int
    failed: int
    verdict: str  # pass | block
    reason: str


def decide(rows: list[dict], margin: float) -> Outcome:
    wins = sum(r["outcome"] == "win" for r in rows)
    ties = sum(r["outcome"] == "tie" for r in rows)
    losses = sum(r["outcome"] == "loss" for r in rows)
    judged = wins + ties + losses
    failed = len(rows) - judged
    if judged == 0:
        return Outcome(0, 0, 0, failed, "block", "no row could be judged: the gate cannot pass blind")
    lead = (losses - wins) / judged
    counts = f"{wins} wins, {ties} ties, {losses} losses of {judged} judged rows"
    if lead > margin:
        return Outcome(wins, ties, losses, failed, "block",
                       f"the challenger loses: {counts}; losses exceed wins by {lead:.1%} > margin {margin:.1%}")  # fmt: skip
    return Outcome(wins, ties, losses, failed, "pass", f"the challenger holds: {counts} (margin {margin:.1%})")
