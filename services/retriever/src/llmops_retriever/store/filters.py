"""Payload filters in Qdrant's own JSON shape (a subset), validated here and translated by each engine.

Keys name payload fields: ``document_id``, ``chunk_index``, ``ingested_at`` (epoch seconds), or
``metadata.<field>`` (nested fields with more dots). Example::

    {"must": [{"key": "metadata.lang", "match": {"value": "en"}},
              {"key": "metadata.year", "range": {"gte": 2020}}],
     "must_not": [{"key": "metadata.status", "match": {"any": ["draft", "retired"]}}]}
"""

from typing import Annotated, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

KEY_PATTERN = r"^(document_id|chunk_index|ingested_at|metadata(\.[A-Za-z0-9_-]{1,64}){1,8})$"
MAX_CONDITIONS = 64

Scalar = Annotated[str, Field(max_length=1024)] | int | bool


class Match(BaseModel):
    """Exactly one of: ``value`` (equal), ``any`` (one of), ``except`` (none of)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    value: Scalar | None = None
    any: list[str] | list[int] | None = Field(default=None, max_length=1024)
    except_: list[str] | list[int] | None = Field(default=None, alias="except", max_length=1024)

    @model_validator(mode="after")
    def _one(self) -> "Match":
        if sum(x is not None for x in (self.value, self.any, self.except_)) != 1:
            raise ValueError("match needs exactly one of value, any, except")
        return self


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _some(self) -> "Range":
        if all(x is None for x in (self.gt, self.gte, self.lt, self.lte)):
            raise ValueError("range needs at least one of gt, gte, lt, lte")
        return self


class FieldCondition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=KEY_PATTERN)
    match: Match | None = None
    range: Range | None = None

    @model_validator(mode="after")
    def _one(self) -> "FieldCondition":
        if (self.match is None) == (self.range is None):
            raise ValueError("a condition needs exactly one of match, range")
        return self


Condition = Union[FieldCondition, "Filter"]


class Filter(BaseModel):
    """All of ``must``, at least one of ``should`` (when given), none of ``must_not``. Filters nest."""

    model_config = ConfigDict(extra="forbid")

    must: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    should: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    must_not: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)

    @model_validator(mode="after")
    def _not_empty(self) -> "Filter":
        if not (self.must or self.should or self.must_not):
            raise ValueError("a filter needs at least one condition")
        return self


Filter.model_rebuild()


def match(key: str, value: str | int) -> FieldCondition:
    return FieldCondition(key=key, match=Match(value=value))


def document_filter(document_id: str, *, from_chunk: int | None = None) -> Filter:
    """The points of one document; with ``from_chunk``, only its chunks from that index on (leftovers)."""
    must: list[Condition] = [match("document_id", document_id)]
    if from_chunk is not None:
        must.append(FieldCondition(key="chunk_index", range=Range(gte=from_chunk)))
    return Filter(must=must)


def first_chunks() -> Filter:
    """One point per document: its chunk 0 (a document's chunks are numbered from 0, and re-ingesting it keeps
    one chunk per index), so counting these counts documents, on the payload index of ``chunk_index``."""
    return Filter(must=[match("chunk_index", 0)])


def combine(*filters: Filter | None) -> Filter | None:
    present = [f for f in filters if f is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else Filter(must=present)
