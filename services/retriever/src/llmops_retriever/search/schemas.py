"""The search request; its answer is the shared contract (``llmops_common.contracts.search``): the gateway reads it."""

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmops_retriever.store.filters import Filter

MAX_TOP_K = 100


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=8_000)
    top_k: int = Field(default=4, ge=1, le=MAX_TOP_K)
    filter: Filter | None = None
    score_threshold: float | None = Field(
        default=None, description="minimum dense similarity; in hybrid mode it filters the dense candidates"
    )
    hybrid: bool | None = Field(default=None, description="default: the collection's setting; false: dense only")
    exact: bool = Field(default=False, description="exhaustive search instead of the index (slow; for evaluation)")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("query is blank")
        return query
