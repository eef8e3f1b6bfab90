from datetime import datetime

from pydantic import BaseModel

from llmops_common.contracts.ratings import MAX_COMMENT_CHARS, MAX_CORRECTION_CHARS, RatingAccepted, RatingIn

__all__ = ["MAX_COMMENT_CHARS", "MAX_CORRECTION_CHARS", "RatingAccepted", "RatingIn", "RatingPublic"]


class RatingPublic(BaseModel):
    id: int
    request_id: str
    rating: str
    comment: str | None
    correction: str | None
    current: bool
    created_at: datetime
    idempotency_key: str | None
