from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_COMMENT_CHARS = 2_000
MAX_CORRECTION_CHARS = 32_000


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
