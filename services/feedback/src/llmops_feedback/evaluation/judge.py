"""LLM-as-judge: a rubric's prompt sent through the gateway to any route (a strong model in production, the
bundled one locally), its answer parsed into a score and a rationale.

Parsing is lenient (JSON, JSON inside prose or a code fence, a cut-off JSON's score, ``Score: 4``) because small
judges wander; an answer with no score in it is retried, then counted as a failed judgement, never an exception.
The tokens of every attempt are counted: that is what the judgement cost.
"""

import json
import re
from dataclasses import dataclass, field

import httpx

from llmops_feedback.evaluation.rubrics import Needs, Rubric

_SCORE_JSON = re.compile(r'"score"\s*:\s*"?([1-5](?:\.\d+)?)')
_SCORE_TEXT = re.compile(r"\bscore\b\W{0,3}([1-5](?:\.\d+)?)\b", re.IGNORECASE)
_LONE_DIGIT = re.compile(r"^\W*([1-5])\W*$")
_RATIONALE = re.compile(r'"rationale"\s*:\s*"((?:[^"\\]|\\.)*)')
# Structured output where the upstream supports it (vLLM does): the judge can only answer in this shape.
_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "rationale": {"type": "string"}},
    "required": ["score", "rationale"],
}


class JudgeError(Exception):
    """The judge route could not be asked: ``status`` and ``code`` are the gateway's (429 over quota, 404 no such
    route, 502/503/504 upstream) or 503 when the gateway is unreachable."""

    def __init__(self, status: int, message: str, *, code: str | None = None, retry_after: str | None = None):
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class Item:
    """What is judged."""

    question: str
    answer: str
    reference: str | None = None
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Parsed:
    score: int  # 1..5
    rationale: str


@dataclass(frozen=True)
class Judgement:
    score: float | None  # in [0, 1]; None: the judge gave no usable answer
    raw_score: int | None
    rationale: str
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    ok: bool


def parse(text: str) -> Parsed | None:
    """The score (1..5) and rationale in a judge's answer, or None when it holds no score."""
    text = text.strip()
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = json.loads(text[start : end + 1])
        except ValueError:
            data = None
        if isinstance(data, dict):
            score = data.get("score")
            if isinstance(score, str) and score.strip().isdigit():
                score = int(score.strip())
            if isinstance(score, int | float) and not isinstance(score, bool) and 1 <= score <= 5:
                return Parsed(round(score), str(data.get("rationale") or "").strip())
    for pattern in (_SCORE_JSON, _SCORE_TEXT, _LONE_DIGIT):
        found = pattern.search(text)
        if found:
            rationale = _RATIONALE.search(text)
            return Parsed(round(float(found.group(1))), rationale.group(1) if rationale else text[:300])
    return None


def messages(rubric: Rubric, item: Item) -> list[dict]:
    parts = [f"Question:\n{item.question}"]
    if rubric.needs == Needs.REFERENCE:
        parts.append(f"Reference answer:\n{item.reference}")
    if rubric.needs == Needs.SOURCES:
        parts.append("Sources:\n" + "\n".join(f"[{i}] {s}" for i, s in enumerate(item.sources, 1)))
    parts.append(f"Answer to grade:\n{item.answer}")
    return [{"role": "system", "content": rubric.instructions}, {"role": "user", "content": "\n\n".join(parts)}]


async def judge(
    client: httpx.AsyncClient,
    *,
    route: str,
    rubric: Rubric,
    item: Item,
    attempts: int = 3,
    max_tokens: int = 96,
    structured: bool = True,
) -> Judgement:
    """Asks ``route`` (through the gateway ``client`` points at, with a judge key) to grade ``item``. Raises
    ``JudgeError`` when the route cannot be asked; an answer without a score is retried up to ``attempts`` times
    (sampling then, so a retry can differ) and then is a failed judgement."""
    body: dict = {"model": route, "messages": messages(rubric, item), "max_tokens": max_tokens, "temperature": 0}
    if structured:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "judgement", "schema": _SCHEMA}}
    prompt_tokens = completion_tokens = 0
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            response = await client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise JudgeError(503, f"gateway unreachable: {exc!r}", code="judge_unreachable") from None
        if response.status_code != 200:
            raise gateway_error(response)
        data = response.json()
        usage = data.get("usage") or {}
        prompt_tokens += int(usage.get("prompt_tokens") or 0)
        completion_tokens += int(usage.get("completion_tokens") or 0)
        last = ((data.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
        parsed = parse(last)
        if parsed is not None:
            return Judgement((parsed.score - 1) / 4, parsed.score, parsed.rationale[:2000], attempt,
                             prompt_tokens, completion_tokens, ok=True)  # fmt: skip
        body["temperature"] = 0.7  # greedy would answer the same again
    rationale = f"no score in the judge's answer after {attempts} attempts; last: {last[:200]!r}"
    return Judgement(None, None, rationale, attempts, prompt_tokens, completion_tokens, ok=False)


def gateway_error(response: httpx.Response) -> JudgeError:
    try:
        error = response.json()["error"]
        message, code = str(error.get("message")), error.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, code = response.text[:300], None
    return JudgeError(
        response.status_code, f"judge route answered {response.status_code}: {message}",
        code=code, retry_after=response.headers.get("retry-after"),
    )  # fmt: skip
