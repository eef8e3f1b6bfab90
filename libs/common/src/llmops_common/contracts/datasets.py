"""Training-data lines: the feedback service exports them as JSONL, the trainer reads them.

Both follow TRL's conversational formats. SFT: ``{"messages": [...]}``, the last message the assistant answer to
learn. Preference: ``{"prompt": [...], "chosen": [...], "rejected": [...]}``, one assistant message each side.
``metadata`` names the request a line came from; readers may ignore it, and ignore keys they do not know.
"""

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = get_args(Role)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str


class LineMetadata(BaseModel):
    """Where a line came from: ``thumbs_up`` (an answer rated up), ``correction`` (a user's better answer) or
    ``thumbs`` (an answer rated up paired with one rated down)."""

    request_id: str
    route: str
    variant: str
    source: Literal["thumbs_up", "correction", "thumbs"]


class SFTLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    messages: list[ChatMessage] = Field(min_length=1)
    metadata: LineMetadata | None = None


class PreferenceLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: list[ChatMessage]
    chosen: list[ChatMessage] = Field(min_length=1)
    rejected: list[ChatMessage] = Field(min_length=1)
    metadata: LineMetadata | None = None
