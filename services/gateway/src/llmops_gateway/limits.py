"""Limits shared by keys and routes: requests/minute, tokens/minute, tokens/day, and a cap on max_tokens."""

from pydantic import BaseModel, ConfigDict, Field

MAX_LIMIT = 2**31 - 1


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # At most 2**31 - 1: the SQL columns are INTEGER (a larger limit was a database error, a 500).
    rpm: int | None = Field(default=None, ge=1, le=MAX_LIMIT, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, le=MAX_LIMIT, description="tokens per minute (prompt + completion)")
    tpd: int | None = Field(default=None, ge=1, le=MAX_LIMIT, description="tokens per day (the daily budget)")
    max_tokens: int | None = Field(
        default=None, ge=1, le=1_000_000, description="cap on a request's max_tokens (lowered to it, or set if absent)"
    )

    @property
    def empty(self) -> bool:
        """No counted limit (the max_tokens cap counts nothing: it needs no Redis)."""
        return self.rpm is None and self.tpm is None and self.tpd is None
