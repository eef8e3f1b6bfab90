from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from llmops_common.openapi import given

# Ten years: a window reaching before year 1 was a 500 (timedelta overflow), found by schemathesis.
MAX_WINDOW_S = 10 * 365 * 86_400.0


class RubricPublic(BaseModel):
    name: str
    version: int
    key: str  # name@vN
    fingerprint: str
    kind: str  # judge | deterministic
    needs: str  # nothing | reference | sources
    description: str
    pass_at: float


class RunIn(BaseModel):
    """Score logged requests of a route now (in the background, on the evaluation workers)."""

    model_config = ConfigDict(extra="forbid")

    route: str = Field(min_length=1, max_length=128)
    rubric: str = Field(min_length=1, max_length=64)
    since_s: float = Field(default=86_400.0, gt=0, le=MAX_WINDOW_S, description="requests of this trailing window")
    sample: int = Field(default=100, ge=1, le=10_000, description="at most this many, newest first")
    judge_route: str | None = Field(default=None, max_length=128, description="the judge; FEEDBACK_EVAL_JUDGE_ROUTE")


class RunOut(BaseModel):
    rubric: str
    scorer: str
    queued: int
    request_ids: list[str]


class ScoreIn(BaseModel):
    """A score made elsewhere (an offline judge, an annotation tool), stored beside the ratings like the workers'."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    request_id: str = Field(min_length=1, max_length=128)
    rubric: str = Field(min_length=1, max_length=64)
    scorer: str = Field(min_length=1, max_length=160)
    score: float = Field(ge=0, le=1)
    rationale: str | None = Field(default=None, max_length=4000)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)


class ScorePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    request_id: str
    rubric: str
    rubric_version: int
    fingerprint: str
    scorer: str
    origin: str
    status: str
    score: float | None
    raw_score: int | None
    rationale: str | None
    attempts: int
    prompt_tokens: int
    completion_tokens: int


class VariantScoresPublic(BaseModel):
    route: str
    variant: str
    scorer: str
    scored: int
    failed: int
    skipped: int
    queued: int
    mean: float | None
    tokens: int
    tokens_per_judgement: float | None
    histogram: list[int]


class AgreementPublic(BaseModel):
    n: int
    confusion: dict[str, dict[str, int]]
    observed: float | None
    expected: float | None
    kappa: float | None
    interval: tuple[float, float] | None
    trust: str


class Report(BaseModel):
    rubric: str  # name@vN
    scorer: str | None
    route: str | None
    variants: list[VariantScoresPublic]
    agreement: AgreementPublic


class EvalItem(BaseModel):
    """One eval question. ``reference``: the expected answer or fact; ``sources``: documents a RAG answer should be
    grounded in; ``source_document``: the id of the document holding the fact (RAG sets)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=20_000)
    reference: str | None = Field(default=None, max_length=20_000)
    sources: list[str] = Field(default_factory=list, max_length=50)
    source_document: str | None = Field(default=None, max_length=256)
    request_id: str | None = Field(default=None, max_length=128)  # the logged request it came from
    origin: str | None = Field(default=None, max_length=32)  # correction | thumbs_up | upload


class FromFeedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    route: str | None = Field(default=None, max_length=128)
    since_s: float = Field(default=30 * 86_400.0, gt=0, le=MAX_WINDOW_S)
    limit: int = Field(default=500, ge=1, le=10_000)


class EvalSetIn(BaseModel):
    """Items given, or built from feedback: exactly one of the two."""

    # The rules in the document too; the view checks them, with codes of their own (invalid_eval_set, empty_eval_set).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [given(["items"], absent=["from_feedback"]), given(["from_feedback"], absent=["items"])]
        },
    )

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    items: list[EvalItem] | None = Field(default=None, max_length=10_000, json_schema_extra={"minItems": 1})
    from_feedback: FromFeedback | None = None


class EvalSetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    version: str
    origin: str
    size: int
    created_at: datetime
