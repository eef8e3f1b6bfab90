"""Prompts in MLflow's prompt registry, as the gateway, the CLI and a packaged route read them.

A reference is MLflow's own URI: ``prompts:/<name>@<alias>`` (follows the alias) or ``prompts:/<name>/<version>``
(pinned). Registered templates use MLflow's native double braces; the variables are ``{{sources}}`` (the numbered
retrieved chunks) and ``{{question}}`` (the user's last message), nothing else, so a template with a hole the
gateway cannot fill is refused when it is pushed or referenced, never sent to a model.

Two shapes, read the same way everywhere:
- a text template is the system message (the user's turn is left as it is);
- a chat template holds a ``system`` message and/or a ``user`` message (in that order); the user message replaces
  the text of the request's last user turn and must contain ``{{question}}``.
A template that uses ``{{sources}}`` is a RAG template (used when the request retrieves); one without is a plain
prompt (a system prompt, used when it does not).
"""

import re
from dataclasses import dataclass

REF_PATTERN = r"^prompts:/[A-Za-z0-9][A-Za-z0-9._-]{0,127}(@[A-Za-z0-9][A-Za-z0-9_-]{0,63}|/[1-9][0-9]{0,8})$"
VARIABLES = ("sources", "question")
# MLflow's own variable syntax (mlflow.prompt.constants.PROMPT_TEMPLATE_VARIABLE_PATTERN), restated because that
# module is not part of its public API.
_DOUBLE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_.]*)\s*\}\}")
_SINGLE = re.compile(r"(?<!\{)\{(sources|question)\}(?!\})")
MAX_CHARS = 8000

# The gateway's built-in RAG templates (single braces, its own form), and the registered prompt each is seeded as by
# ``llmops up`` (alias ``production``). A published version never changes: a better prompt is a new version.
BUILTIN: dict[str, dict[str, str]] = {
    # Context in the system message, the user's question untouched: suits instruction-tuned models.
    "grounded-v1": {
        "system": "Answer the user's question using only the numbered sources below. If they do not contain the "
        "answer, say that you do not know. Cite the sources you use like [1].\n\nSources:\n{sources}",
        "user": "{question}",
    },
    # Context and question in the user turn, one short instruction: small models follow this one better.
    "context-first-v1": {
        "system": "You answer questions from the given context. Be brief.",
        "user": "Context:\n{sources}\n\nQuestion: {question}\nAnswer from the context above.",
    },
}
DEFAULT_BUILTIN = "context-first-v1"  # a route's RAG template unless it names one (measured best: rag.templates)
SEEDED_ALIAS = "production"


def seeded_name(builtin: str) -> str:
    """``context-first-v1`` is registered as ``rag-context-first`` (its registry versions replace the suffix)."""
    return "rag-" + builtin.rsplit("-v", 1)[0]


def is_ref(value: object) -> bool:
    return isinstance(value, str) and re.match(REF_PATTERN, value) is not None


@dataclass(frozen=True, slots=True)
class Parts:
    """A checked template in the gateway's own form: single-brace ``{sources}``/``{question}`` (what its
    built-in and inline templates use); ``user`` None leaves the user's turn untouched."""

    system: str
    user: str | None

    @property
    def rag(self) -> bool:
        return "{sources}" in self.system + (self.user or "")


def parts(template: str | list, *, rag: bool | None = None) -> Parts:
    """Checks a registered template and converts it; ``ValueError`` (``TypeError``: not a template) says what is wrong. ``rag``: True requires
    ``{{sources}}``, False refuses it, None accepts either."""
    if isinstance(template, str):
        system, user = template, None
    elif isinstance(template, list):
        system, user = _chat(template)
    else:
        raise TypeError("a template is a text or a list of chat messages")
    for text in (system, user or ""):
        if len(text) > MAX_CHARS:
            raise ValueError(f"a message of the template is longer than {MAX_CHARS} characters")
        if single := _SINGLE.search(text):
            raise ValueError(f"write {{{{{single.group(1)}}}}} with double braces, not {single.group(0)}")
        unknown = sorted({v for v in _DOUBLE.findall(text) if v not in VARIABLES})
        if unknown:
            names = ", ".join("{{" + v + "}}" for v in unknown)
            raise ValueError(f"unknown variable {names}; a template may use only {{{{sources}}}} and {{{{question}}}}")
    if _DOUBLE.search(system) and "question" in _DOUBLE.findall(system):
        raise ValueError("{{question}} belongs in the user message (a chat template's user message)")
    if user is not None and "question" not in _DOUBLE.findall(user):
        raise ValueError("the user message needs {{question}}")
    converted = Parts(system=_single(system), user=None if user is None else _single(user))
    if rag is True and not converted.rag:
        raise ValueError("a RAG template needs {{sources}}")
    if rag is False and converted.rag:
        raise ValueError("{{sources}} is filled only when the request retrieves: use it in a RAG template")
    if not converted.system.strip() and converted.user is None:
        raise ValueError("the template is empty")
    return converted


def to_registry(system: str, user: str | None) -> str | list[dict]:
    """A gateway template (single braces) as MLflow stores it: a text when only a system message, else chat."""
    system = system.replace("{sources}", "{{sources}}").replace("{question}", "{{question}}")
    if user is None or user == "{question}":  # the user's turn untouched: a text template says the same
        return system
    user = user.replace("{sources}", "{{sources}}").replace("{question}", "{{question}}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _chat(messages: list) -> tuple[str, str | None]:
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if roles not in (["system"], ["user"], ["system", "user"]):
        raise ValueError("a chat template is a system message, a user message, or both in that order")
    if not all(isinstance(m.get("content"), str) for m in messages):
        raise ValueError("each message of a chat template needs a text content")
    by_role = {m["role"]: m["content"] for m in messages}
    return by_role.get("system", ""), by_role.get("user")


def _single(text: str) -> str:
    return _DOUBLE.sub(lambda m: "{" + m.group(1) + "}", text)
