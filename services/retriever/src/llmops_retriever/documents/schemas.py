from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

# Any printable text but "/": a document id is a path segment of the API.
DOCUMENT_ID_PATTERN = r"^[^/\x00-\x1f\x7f]{1,256}$"
METADATA_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # what a filter key can name
MAX_METADATA_BYTES = 16 * 1024  # copied into every chunk's payload
METADATA_KEYS = {"propertyNames": {"pattern": METADATA_KEY_PATTERN}}  # in the document; check_metadata checks them
MAX_TEXT_CHARS = 4_000_000


def check_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    import re

    for key in metadata:
        if not re.match(METADATA_KEY_PATTERN, key):
            raise ValueError(f"metadata key {key!r} must match {METADATA_KEY_PATTERN} (so filters can name it)")
    try:
        encoded = orjson.dumps(metadata)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, which no payload holds (it was a 500)
        raise ValueError("metadata integers must fit in 64 bits") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata over {MAX_METADATA_BYTES} bytes as JSON")
    return metadata


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None,
        pattern=DOCUMENT_ID_PATTERN,
        description="ingesting the same id again replaces the document; default: a hash of the text",
    )
    # Some text besides whitespace and NULs, which normalising removes (the service answers 422 empty_document).
    text: str = Field(max_length=MAX_TEXT_CHARS, json_schema_extra={"pattern": r"[^\s\x00]"})
    metadata: dict[str, Any] = Field(default_factory=dict, json_schema_extra=METADATA_KEYS)

    _metadata = field_validator("metadata")(check_metadata)


class DocumentBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1)


class IngestedDocument(BaseModel):
    id: str
    chunks: int
    removed_chunks: int = Field(description="chunks of an earlier version beyond the new chunk count, deleted")


class IngestResult(BaseModel):
    documents: list[IngestedDocument]
    chunks: int
    seconds: float


class ChunkPublic(BaseModel):
    id: str
    index: int
    text: str


class DocumentPublic(BaseModel):
    id: str
    collection: str
    chunks: int
    metadata: dict[str, Any]
    source: str | None
    ingested_at: datetime
    chunk_texts: list[ChunkPublic] | None = Field(default=None, description="with ?chunks=true, in order")


class MetadataPatch(BaseModel):
    """A JSON merge patch (RFC 7386) of the document's metadata: keys set to null are removed."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] = Field(json_schema_extra=METADATA_KEYS)
