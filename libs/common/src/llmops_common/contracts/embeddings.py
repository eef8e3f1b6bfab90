"""The OpenAI embeddings request, as the gateway checks it and the retriever's ``POST /v1/embeddings`` serves it.

Defined once for both sides. Unknown fields pass through (``extra="allow"``) so another OpenAI-compatible embedding
upstream (vLLM with an embedding model) gets what the client sent.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

MAX_INPUTS = 2048  # OpenAI's own limit on one request's inputs


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    # A text, texts, one token array or token arrays. Strict types: "1" is not the token 1, nor 1 the text "1".
    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=256)

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value):
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("input must not be empty")
        if len(items) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs per request")
        for item in items:
            if isinstance(item, str | list) and len(item) == 0:
                raise ValueError("input must not contain empty strings or empty token arrays")
            if isinstance(item, int) and item < 0 or isinstance(item, list) and min(item) < 0:
                raise ValueError("token ids must not be negative")
        return value

    def items(self) -> list[str] | list[list[int]]:
        """The inputs as a list of texts or a list of token arrays."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and isinstance(value[0], int):
            return [value]  # one token array
        return value

    def estimated_tokens(self) -> int:
        """For reserving quota before the upstream counts: ~4 characters a token, or the token arrays' length."""
        return sum(len(item) if isinstance(item, list) else (len(item) + 3) // 4 for item in self.items())


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # floats, or base64 of little-endian float32 (OpenAI's encoding)


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
