"""RAG options: per request (the ``rag`` extension field) and per route (defaults and policy)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmops_common.contracts.prompts import is_ref
from llmops_gateway.rag.templates import BUILTIN, DEFAULT, PromptTemplate

COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MAX_TOP_K = 20
MAX_ALLOWED_COLLECTIONS = 64  # a route's or a key's list of collections
CollectionName = Annotated[str, Field(pattern=COLLECTION_PATTERN)]


class RagRequest(BaseModel):
    """``"rag": {"collection", "top_k", "filter", "score_threshold"}`` in a completion request; fields left out
    come from the route's ``rag`` defaults. The filter is the retriever's (Qdrant-style, see its README)."""

    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)
    filter: dict | None = None
    score_threshold: float | None = None


class RagRoute(BaseModel):
    """A route's RAG settings. With ``collection`` every request on the route retrieves from it (a request may
    send ``"rag": false`` to skip); without, only requests that name a collection do."""

    # A route is stored as it was accepted and read back through this same model: a validator here must check,
    # never rewrite, or what PUT accepted could fail on GET. No NaN or infinity: JSON cannot carry them back.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    collection: CollectionName | None = None
    allowed_collections: list[CollectionName] | None = Field(
        default=None,
        max_length=MAX_ALLOWED_COLLECTIONS,
        description="collections a request may name (besides `collection`); default: only `collection` when set, "
        "any when not",
    )
    # One source by default: with a small model every extra chunk lowered the share of grounded answers (see
    # templates.DEFAULT); a route serving a larger model raises it.
    top_k: int = Field(default=1, ge=1, le=MAX_TOP_K)
    filter: dict | None = None
    score_threshold: float | None = None
    template: str | PromptTemplate = Field(
        default=DEFAULT,
        description="a built-in version name, a registered prompt (`prompts:/<name>@<alias>` or "
        "`prompts:/<name>/<version>`, resolved when the route is saved), or a template",
    )
    on_retriever_error: Literal["fail", "answer_without_context"] = Field(
        default="fail", description="retriever unreachable: 503, or answer with a system message saying so"
    )
    max_context_chars: int = Field(default=6000, ge=200, le=200_000, description="retrieved text put in the prompt")

    @field_validator("template")
    @classmethod
    def _known(cls, template: str | PromptTemplate) -> str | PromptTemplate:
        if isinstance(template, str) and template not in BUILTIN and not is_ref(template):
            raise ValueError(
                f"unknown template {template!r}; built in: {', '.join(BUILTIN)}, or a prompts:/<name>@<alias> "
                "or prompts:/<name>/<version> reference"
            )
        return template

    @property
    def prompt_ref(self) -> str | None:
        """The registered prompt this route's RAG template is, if it is one."""
        return self.template if is_ref(self.template) else None

    def prompt(self) -> PromptTemplate:
        """The built-in or inline template (a registered one is resolved by the prompt registry)."""
        return BUILTIN[self.template] if isinstance(self.template, str) else self.template

    def may_use(self, collection: str) -> bool:
        if collection == self.collection:
            return True
        if self.allowed_collections is not None:
            return collection in self.allowed_collections
        return self.collection is None


DEFAULT_ROUTE = RagRoute()  # for routes without RAG settings: per-request opt-in, fail when the retriever is down
