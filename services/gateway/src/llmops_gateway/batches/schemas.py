"""OpenAI's batch object, and what ``POST /v1/batches`` accepts."""

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops_gateway.batches.input import ENDPOINTS
from llmops_gateway.batches.models import Batch

WINDOWS = {"24h": timedelta(hours=24)}


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1, max_length=64)
    # Checked by the service, which answers an unknown one with 400 and its own code, as OpenAI does; the document
    # lists the values all the same.
    endpoint: str = Field(max_length=64, json_schema_extra={"enum": list(ENDPOINTS)})
    completion_window: str = Field(max_length=16, json_schema_extra={"enum": list(WINDOWS)})
    metadata: dict[str, str] | None = Field(default=None, max_length=16)


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class BatchUsage(BaseModel):
    """OpenAI's batch usage: the tokens of the requests done so far."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = InputTokensDetails()
    output_tokens_details: OutputTokensDetails = OutputTokensDetails()


class BatchError(BaseModel):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class BatchObject(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts
    usage: BatchUsage
    metadata: dict[str, str] | None = None


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


def _epoch(value) -> int | None:
    return int(value.timestamp()) if value is not None else None


def to_public(row: Batch, counts: RequestCounts, usage: BatchUsage | None = None) -> BatchObject:
    return BatchObject(
        id=row.id,
        endpoint=row.endpoint,
        errors=BatchErrors.model_validate(row.errors) if row.errors else None,
        input_file_id=row.input_file_id,
        completion_window=row.completion_window,
        status=row.status,
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        created_at=_epoch(row.created_at),
        in_progress_at=_epoch(row.in_progress_at),
        expires_at=_epoch(row.expires_at),
        finalizing_at=_epoch(row.finalizing_at),
        completed_at=_epoch(row.completed_at),
        failed_at=_epoch(row.failed_at),
        expired_at=_epoch(row.expired_at),
        cancelling_at=_epoch(row.cancelling_at),
        cancelled_at=_epoch(row.cancelled_at),
        request_counts=counts,
        usage=usage or BatchUsage(input_tokens=0, output_tokens=0, total_tokens=0),
        metadata=row.metadata_,
    )
