"""A thumbs rating: what a client sends (to the gateway with its key, or to the feedback service as the admin), and
what comes back while it waits to be attached to its request.

The gateway validates a client's rating with this same model before it forwards it (or, while the feedback service
is down, before it stores it for later delivery): a rating it accepts is one the feedback service takes.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_COMMENT_CHARS = 2_000
MAX_CORRECTION_CHARS = 32_000
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

# Set by the gateway (with the feedback service's ingest token) on a rating it forwards for a client key.
KEY_ID_HEADER = "x-llmops-key-id"  # the key the rating is for: it may rate only that key's requests
RATED_AT_HEADER = "x-llmops-rated-at"  # epoch seconds when the gateway took it: ordering survives late redelivery


# The NUL rule below, stated in the schema too (the validator keeps its clearer message): what the document allows,
# the API accepts.
_NO_NUL = {"pattern": "^[^\x00]*$"}


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
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS, json_schema_extra=_NO_NUL)
    correction: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CORRECTION_CHARS,
        description="a better answer; becomes training data",
        json_schema_extra=_NO_NUL,
    )
    idempotency_key: str | None = Field(
        default=None,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="the same key again (per rater) is the same rating: delivered twice, stored once; "
        "generated when left out",
    )


class RatingAccepted(BaseModel):
    """The 202 body: the rating is stored durably and will be attached to its request exactly once.

    ``pending``: the feedback service holds it until the request's record arrives (the gateway delivers records
    in batches, moments after the answer; a rating for a request the key did not make is never attached).
    ``queued``: the gateway holds it on disk until the feedback service is reachable again."""

    status: Literal["pending", "queued"]
    request_id: str
    rating: Literal["up", "down"]
    idempotency_key: str
    message: str
