"""The OpenAI embeddings request, as the gateway checks it and the retriever's ``POST /v1/embeddings`` serves it.

Defined once for both sides. Unknown fields pass through (``extra="allow"``) so another OpenAI-compatible embedding
upstream (vLLM with an embedding model) gets what the client sent.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, StrictInt, StrictStr, Tag

MAX_INPUTS = 2048  # OpenAI's own limit on one request's inputs


# What ``input`` may be, the rules in the types so that the document states them: no empty text or token array, no
# negative token id, at most MAX_INPUTS inputs. Strict types: "1" is not the token 1, nor 1 the text "1".
Text = Annotated[StrictStr, Field(min_length=1)]
# A token id may come as 7.0 (JSON does not tell 7 from 7.0, nor does JSON Schema's "integer").
TokenId = Annotated[
    StrictInt, Field(ge=0), BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)
]
Tokens = Annotated[list[TokenId], Field(min_length=1)]


def _shape(value: object) -> str | None:
    """Which kind of input a value is, so that an error names that kind's rule alone (``input.texts.0: ...``)."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, list) and value:
        first = value[0]
        return "texts" if isinstance(first, str) else "token_arrays" if isinstance(first, list) else "tokens"
    return "texts" if isinstance(value, list) else None


Input = Annotated[
    Annotated[Text, Tag("text")]
    | Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS), Tag("texts")]
    | Annotated[Tokens, Tag("tokens")]
    | Annotated[list[Tokens], Field(min_length=1, max_length=MAX_INPUTS), Tag("token_arrays")],
    Discriminator(
        _shape,
        custom_error_type="invalid_input",
        custom_error_message="input must be a text, texts, one token array or token arrays",
    ),
]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: Input = Field(description="a text, texts, one token array or token arrays")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=256)

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
