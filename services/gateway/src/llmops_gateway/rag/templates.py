"""Versioned RAG prompt templates. A published version never changes (answers in the request log were made
with it); a better prompt is a new version, chosen per route.

``{sources}`` is replaced by the numbered retrieved chunks, ``{question}`` by the user's last message.
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=VERSION_PATTERN, description="logged with each answer; change it with the text")
    system: str = Field(min_length=1, max_length=8000, description="must contain {sources}")
    user: str = Field(
        default="{question}", max_length=8000, description="the last user turn; may use {question}, {sources}"
    )
    no_context_system: str = Field(
        default="No documents could be searched for this question. Answer from general knowledge, and say that "
        "no documents were consulted.",
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


BUILTIN: dict[str, PromptTemplate] = {
    # Context in the system message, the user's question untouched: suits instruction-tuned models.
    "grounded-v1": PromptTemplate(
        version="grounded-v1",
        system=(
            "Answer the user's question using only the numbered sources below. If they do not contain the "
            "answer, say that you do not know. Cite the sources you use like [1].\n\nSources:\n{sources}"
        ),
    ),
    # Context and question in the user turn, one short instruction: small models follow this one better.
    "context-first-v1": PromptTemplate(
        version="context-first-v1",
        system="You answer questions from the given context. Be brief.",
        user="Context:\n{sources}\n\nQuestion: {question}\nAnswer from the context above.",
    ),
}
DEFAULT = "grounded-v1"


def render(text: str, *, sources: str, question: str) -> str:
    # Plain replacement, not str.format: retrieved text and questions may contain braces.
    return text.replace("{sources}", sources).replace("{question}", question)
