from datetime import datetime

from pydantic import BaseModel


class VariantQuality(BaseModel):
    route: str
    variant: str
    # Set when the summary is split by prompt (``by_prompt``): one row per variant and prompt version
    prompt_name: str | None = None
    prompt_version: str | None = None
    requests: int
    errors: int = 0  # requests answered with a status of 400 or more (refusals, upstream failures)
    rated: int
    up: int
    down: int
    up_rate: float | None  # None until the variant has a rating
    up_rate_low: float | None  # Wilson 95% interval
    up_rate_high: float | None
    avg_latency_ms: float | None
    avg_ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int


class QualitySummary(BaseModel):
    since: datetime
    until: datetime
    variants: list[VariantQuality]
