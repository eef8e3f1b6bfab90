"""What the demo's users ask and how they rate: the bundled invented facts, a few general questions, the rule.

The rating rule, transparent on purpose: an answer earns a thumbs up when it contains the expected fact (case
and spacing aside), otherwise a thumbs down with the correct answer as the correction. A saboteur (``--sabotage``)
rates everything down and "corrects" it to a plausible wrong answer.
"""

import json
import re
from dataclasses import dataclass
from importlib.resources import files

from llmops_cli.demo.general import GENERAL


@dataclass(frozen=True)
class Item:
    id: str
    questions: tuple[str, ...]  # all but the last are asked before training; the last is held out for the canary
    expected: str
    answer: str  # the correct answer sentence: the correction
    wrong: str  # a plausible wrong answer sentence: the saboteur's correction
    document: str | None = None  # the bundled document stating it (invented facts only)

    @property
    def training_questions(self) -> tuple[str, ...]:
        return self.questions[:-1]

    @property
    def held_out_question(self) -> str:
        return self.questions[-1]


def _jsonl(name: str) -> list[dict]:
    text = (files("llmops_cli.demo") / "data" / name).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def facts() -> list[Item]:
    return [
        Item(f["id"], tuple(f["questions"]), f["expected"], f["answer"], f["wrong"], f["document"])
        for f in _jsonl("facts.jsonl")
    ]


def demo_items(count: int) -> list[Item]:
    """``count`` invented facts, and general questions (a third as many) the base model gets right."""
    general = [Item(q.id, q.questions + (q.questions[0],), q.expected, q.answer, q.wrong) for q in GENERAL]
    return facts()[:count] + general[: max(2, count // 3)]


def documents() -> list[dict]:
    """Every fact's document and the distractors, as the retriever's ingest takes them."""
    docs = [{"id": f"fact-{item.id}", "text": item.document} for item in facts()]
    return docs + [{"id": d["id"], "text": d["document"]} for d in _jsonl("distractors.jsonl")]


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def rate(item: Item, answer: str, *, saboteur: bool = False) -> tuple[str, str | None]:
    """``(rating, correction)`` by the rule above."""
    if saboteur:
        return "down", item.wrong
    if _normalised(item.expected) in _normalised(answer):
        return "up", None
    return "down", item.answer
