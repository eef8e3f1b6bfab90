"""Pairwise judging: which of two answers is better, asked twice with the positions swapped. A judge that prefers
whichever answer comes first (position bias) then contradicts itself, and the row counts as a tie."""

import json
import re
from dataclasses import dataclass

import httpx

from llmops_feedback.evaluation.judge import JudgeError, gateway_error

VERSION = "pairwise@v1"
INSTRUCTIONS = (
    "You compare two answers to the same question. Prefer the answer that is correct, states the reference answer's "
    "facts when a reference is given, and answers the question directly. Reply with JSON only, on one line: "
    '{"winner": "A" | "B" | "tie", "rationale": "<one short sentence>"}'
)
_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}, "rationale": {"type": "string"}},
    "required": ["winner", "rationale"],
}
_WINNER = re.compile(r'"winner"\s*:\s*"(A|B|tie)"', re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    winner: str | None  # A | B | tie; None: no usable answer
    rationale: str
    tokens: int


def parse(text: str) -> str | None:
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            winner = json.loads(text[start : end + 1]).get("winner")
        except (ValueError, AttributeError):
            winner = None
        if isinstance(winner, str) and winner.strip().lower() in ("a", "b", "tie"):
            return winner.strip().upper() if winner.strip().lower() != "tie" else "tie"
    found = _WINNER.search(text)
    if found:
        return found.group(1).upper() if found.group(1).lower() != "tie" else "tie"
    return None


async def ask(
    client: httpx.AsyncClient, *, route: str, question: str, reference: str | None, a: str, b: str,
    attempts: int = 3, max_tokens: int = 96, structured: bool = True,
) -> Verdict:  # fmt: skip
    parts = [f"Question:\n{question}"]
    if reference:
        parts.append(f"Reference answer:\n{reference}")
    parts += [f"Answer A:\n{a}", f"Answer B:\n{b}"]
    body: dict = {
        "model": route, "max_tokens": max_tokens, "temperature": 0,
        "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": "\n\n".join(parts)}],
    }  # fmt: skip
    if structured:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "pairwise", "schema": _SCHEMA}}
    tokens, last = 0, ""
    for _ in range(attempts):
        try:
            response = await client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise JudgeError(503, f"gateway unreachable: {exc!r}", code="judge_unreachable") from None
        if response.status_code != 200:
            raise gateway_error(response)
        data = response.json()
        tokens += int((data.get("usage") or {}).get("total_tokens") or 0)
        last = ((data.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
        winner = parse(last)
        if winner is not None:
            return Verdict(winner, last[:500], tokens)
        body["temperature"] = 0.7
    return Verdict(None, f"no winner in the judge's answer: {last[:200]!r}", tokens)


def combine(first: str | None, swapped: str | None) -> str | None:
    """The challenger's outcome from two verdicts: ``first`` with the champion as A, ``swapped`` with the challenger
    as A. Both must lean the same way (or one lean and one tie) for a win or a loss; contradicting verdicts (the
    judge preferring a position, not an answer) are a tie. None when either verdict is missing."""
    if first is None or swapped is None:
        return None
    lean = {"A": -1, "B": 1, "tie": 0}[first] + {"A": 1, "B": -1, "tie": 0}[swapped]
    return "win" if lean > 0 else "loss" if lean < 0 else "tie"
