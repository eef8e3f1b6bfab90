"""Versioned RAG prompt templates. A published version never changes (answers in the request log were made
with it); a better prompt is a new version, chosen per route.

``{sources}`` is replaced by the numbered retrieved chunks, ``{question}`` by the user's last message.
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops_common.contracts import prompts as prompt_contract

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NO_CONTEXT_SYSTEM = (
    "No documents could be searched for this question. Answer from general knowledge, and say that no documents "
    "were consulted."
)


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=VERSION_PATTERN, description="logged with each answer; change it with the text")
    system: str = Field(min_length=1, max_length=8000, description="must contain {sources}")
    user: str = Field(
        default="{question}", max_length=8000, description="the last user turn; may use {question}, {sources}"
    )
    no_context_system: str = Field(
        default=NO_CONTEXT_SYSTEM,
        max_length=8000,
        description="the system message when the retriever is down and the route answers without context",
    )

    @model_validator(mode="after")
    def _placeholders(self) -> "PromptTemplate":
        if "{sources}" not in self.system + self.user:
            raise ValueError("a RAG template needs {sources} in system or user")
        if "{question}" not in self.user:
            raise ValueError("the user template needs {question}")
        return self


# Defined once in the shared contract: ``llmops up`` registers the same texts in MLflow's prompt registry.
BUILTIN: dict[str, PromptTemplate] = {
    version: PromptTemplate(version=version, **texts) for version, texts in prompt_contract.BUILTIN.items()
}
# The default measured best with the bundled model (bench/evaluation_bench.py, 48 questions on 24 invented facts
# among distractors): context-first-v1 with one source put the fact in 94% of answers, grounded-v1 83% (top_k 1)
# and 58% (top_k 2), at 100% retrieval hit@1 for both.
DEFAULT = prompt_contract.DEFAULT_BUILTIN


def render(text: str, *, sources: str, question: str) -> str:
    # Plain replacement, not str.format: retrieved text and questions may contain braces.
    return text.replace("{sources}", sources).replace("{question}", question)
