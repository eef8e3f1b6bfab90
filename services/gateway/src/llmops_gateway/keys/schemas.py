from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops_gateway.limits import Limits

ROUTE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"


class KeyBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    limits: Limits = Field(default_factory=Limits)
    allowed_routes: list[str] | None = Field(default=None, description="route names this key may use; null = all")


class KeyCreate(KeyBase):
    expires_at: datetime | None = None
    expires_in_s: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_expiry(self) -> "KeyCreate":
        if self.expires_at is not None and self.expires_in_s is not None:
            raise ValueError("give expires_at or expires_in_s, not both")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a timezone")
        return self


class KeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    limits: Limits | None = None
    allowed_routes: list[str] | None = None
    expires_at: datetime | None = None


class KeyPublic(KeyBase):
    id: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="the secret; shown once, never again")


class KeyList(BaseModel):
    data: list[KeyPublic]
