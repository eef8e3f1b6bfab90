from datetime import datetime

from pydantic import BaseModel


class VariantQuality(BaseModel):
    route: str
    variant: str
    requests: int
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
