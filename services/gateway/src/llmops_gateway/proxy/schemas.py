"""The OpenAI request fields the gateway reads. Every other field passes through to the upstream untouched."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Token counts and ids are 32-bit in every model server; bounded here so the schema states what parsing accepts
# (an integer beyond what pydantic parses was a 422 for a body the document allowed).
MAX_TOKENS = 2**31 - 1


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict] | None = None


class CompletionRequestBase(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    n: int = Field(default=1, ge=1, le=16)
    user: str | None = Field(default=None, max_length=256)


class ChatCompletionRequest(CompletionRequestBase):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)


TokenId = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


class CompletionRequest(CompletionRequestBase):
    prompt: str | list[str] | list[TokenId] | list[list[TokenId]]
