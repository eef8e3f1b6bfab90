"""What a scorer sees of a logged request: the user's question, the answer, the reference (the correction a person
gave with a rating) and the numbered sources of a RAG prompt."""

import re

from llmops_feedback.evaluation.judge import Item
from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord

# The gateway numbers retrieved chunks ``[1] text`` in the prompt it sends (its RAG templates).
_SOURCE_LINE = re.compile(r"^\[(\d+)\] (.+)$", re.MULTILINE)


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def question_of(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [_text(m.get("content")) for m in prompt or [] if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users else ""


def sources_of(prompt) -> list[str]:
    """The numbered sources in the prompt, in order: ``[n]`` of the answer cites ``sources[n - 1]``."""
    text = (
        prompt
        if isinstance(prompt, str)
        else "\n".join(_text(m.get("content")) for m in prompt or [] if isinstance(m, dict))
    )
    found: dict[int, str] = {}
    for number, line in _SOURCE_LINE.findall(text):
        found.setdefault(int(number), line.strip())
    return [found[n] for n in range(1, len(found) + 1) if n in found]


def item_of(record: RequestRecord, current: Rating | None) -> Item | None:
    """None when there is nothing to judge: no stored text (``FEEDBACK_STORE_TEXT=false``) or no answer."""
    if record.prompt is None or not record.answer:
        return None
    reference = current.correction if current is not None and current.correction else None
    return Item(question_of(record.prompt), record.answer, reference, sources_of(record.prompt))
