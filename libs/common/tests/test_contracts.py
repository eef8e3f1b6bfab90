"""The shared contracts: what both sides of each exchange rely on."""

import jsonschema
import pytest
from pydantic import ValidationError

from llmops_common.contracts.adapters import served_name
from llmops_common.contracts.datasets import ROLES, PreferenceLine, SFTLine
from llmops_common.contracts.embeddings import EmbeddingRequest
from llmops_common.contracts.requestlog import RequestLogBatch, RequestLogRecord
from llmops_common.contracts.search import SearchResponse


def _record(**fields) -> dict:
    return {
        "request_id": "r1",
        "route": "r",
        "variant": "a",
        "status": 200,
        "started_at": 1.0,
        "finished_at": 2.0,
        **fields,
    }


def test_a_newer_gateways_fields_are_ignored_and_nul_characters_replaced():
    record = RequestLogRecord.model_validate(_record(answer="a\x00b", added_later={"x": 1}))
    assert record.answer == "a\ufffdb" and not hasattr(record, "added_later")
    assert record.usage.prompt_tokens == 0 and record.kind == "chat" and record.retrieved_ids == []


@pytest.mark.parametrize(
    "bad",
    [{"status": 99}, {"request_id": ""}, {"latency_ms": float("nan")}, {"started_at": 1e13}, {"kind": "image"}],
)
def test_records_out_of_range_are_refused(bad):
    with pytest.raises(ValidationError):
        RequestLogRecord.model_validate(_record(**bad))


def test_a_batch_has_records_and_nothing_else():
    with pytest.raises(ValidationError):
        RequestLogBatch.model_validate({"records": []})
    with pytest.raises(ValidationError):
        RequestLogBatch.model_validate({"records": [_record()], "extra": 1})


def test_search_response_reads_what_the_retriever_answers():
    hit = {
        "id": "p1",
        "document_id": "d",
        "chunk_index": 0,
        "score": 0.5,
        "text": "t",
        "metadata": {"k": 1},
        "source": None,
    }
    response = SearchResponse.model_validate({"data": [hit], "hybrid": False, "took_ms": 1.5})
    assert response.data[0].model_dump() == hit


def test_dataset_lines_keep_role_and_content_only():
    line = SFTLine.model_validate(
        {"messages": [{"role": "user", "content": "q", "name": "x"}, {"role": "assistant", "content": "a"}]}
    )
    assert line.model_dump(exclude_none=True) == {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    }
    with pytest.raises(ValidationError):
        SFTLine.model_validate({"messages": [{"role": "tool", "content": "x"}]})
    assert ROLES == ("system", "user", "assistant")
    pair = {
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": [{"role": "assistant", "content": "a"}],
        "rejected": [{"role": "assistant", "content": "b"}],
    }
    assert PreferenceLine.model_validate(pair).model_dump(exclude_none=True) == pair


def test_adapters_are_served_as_model_at_alias():
    assert served_name("support-bot", "champion") == "support-bot@champion"


@pytest.mark.parametrize(
    "value,items",
    [("a", ["a"]), (["a", "b"], ["a", "b"]), ([1, 2], [[1, 2]]), ([[1], [2, 3]], [[1], [2, 3]]), ([7.0], [[7]])],
)
def test_an_embedding_input_the_document_allows_is_read(value, items):
    """[7.0] was refused (a strict int), yet JSON Schema's integer (and the fuzzer) counts 7.0 as one."""
    assert EmbeddingRequest(model="m", input=value).items() == items


@pytest.mark.parametrize(
    "value,where",
    [("", "input.text"), ([], "input.texts"), ([""], "input.texts.0"), ([-1], "input.tokens.0"), ([[1], []], None)],
)
def test_an_embedding_input_the_document_refuses_is_named(value, where):
    with pytest.raises(ValidationError) as refused:
        EmbeddingRequest(model="m", input=value)
    loc = ".".join(str(part) for part in refused.value.errors()[0]["loc"])
    assert loc == (where or "input.token_arrays.1")
    schema = EmbeddingRequest.model_json_schema()["properties"]["input"]
    assert not any(_valid(value, branch) for branch in schema["oneOf"])


def _valid(value, schema) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)
