"""Limits shared by keys and routes: requests/minute, tokens/minute, tokens/day."""

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute (prompt + completion)")
    tpd: int | None = Field(default=None, ge=1, description="tokens per day (the daily budget)")

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.tpd is None
