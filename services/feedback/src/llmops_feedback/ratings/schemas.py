from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_COMMENT_CHARS = 2_000
MAX_CORRECTION_CHARS = 32_000


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("comment", "correction")
    @classmethod
    def _no_nul(cls, value):
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    request_id: str = Field(min_length=1, max_length=128)
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    correction: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CORRECTION_CHARS,
        description="a better answer; becomes training data",
    )


class RatingPublic(BaseModel):
    id: int
    request_id: str
    rating: str
    comment: str | None
    correction: str | None
    current: bool
    created_at: datetime
