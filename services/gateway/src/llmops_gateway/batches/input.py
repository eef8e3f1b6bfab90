"""A batch input file, line by line: what upload, submission and the workers all read the same way.

Each non-blank line is one request, ``{"custom_id", "method": "POST", "url", "body"}``. A line that does not parse
or lacks a field is kept with its problem and its 1-based line number: it becomes an error-file line and the rest
runs (OpenAI's batch behaviour). A ``custom_id`` used twice refuses the whole file (400), since outputs are matched
to requests by it.
"""

from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from llmops_common.contracts.embeddings import EmbeddingRequest
from llmops_gateway.proxy import caps, tokens
from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest

# What a batch may run, and the request models that estimate a line's tokens.
ENDPOINTS = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
}
MAX_CUSTOM_ID = 512


@dataclass(slots=True)
class InputLine:
    number: int  # 1-based line number in the file
    custom_id: str | None = None
    url: str | None = None
    body: dict | None = None
    error: str | None = None  # why this line cannot run; None: it is a request


def read_lines(data: bytes) -> list[InputLine]:
    """Raises ``UnicodeDecodeError`` when the file is not UTF-8."""
    text = data.decode("utf-8")
    return [_line(number, raw) for number, raw in enumerate(text.split("\n"), start=1) if raw.strip()]


def _line(number: int, raw: str) -> InputLine:
    line = InputLine(number)
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        line.error = f"line {number}: not valid JSON ({exc})"
        return line
    if not isinstance(item, dict):
        line.error = f"line {number}: a request must be a JSON object"
        return line
    custom_id = item.get("custom_id")
    if isinstance(custom_id, str) and 0 < len(custom_id) <= MAX_CUSTOM_ID:
        line.custom_id = custom_id
    else:
        line.error = f"line {number}: custom_id must be a string of 1 to {MAX_CUSTOM_ID} characters"
        return line
    url, body = item.get("url"), item.get("body")
    if item.get("method") != "POST":
        line.error = f"line {number}: method must be POST"
    elif url not in ENDPOINTS:
        line.error = f"line {number}: url must be one of {', '.join(ENDPOINTS)}"
    elif not isinstance(body, dict) or not isinstance(body.get("model"), str):
        line.error = f"line {number}: body must be a JSON object with a model"
    elif body.get("stream"):
        line.error = f"line {number}: stream is not supported in a batch"
    else:
        line.url, line.body = url, body
    return line


def duplicate_custom_ids(lines: list[InputLine]) -> list[tuple[str, int, int]]:
    """(custom_id, first line, repeated line) for each repeat."""
    seen: dict[str, int] = {}
    repeats = []
    for line in lines:
        if line.custom_id is None:
            continue
        if line.custom_id in seen:
            repeats.append((line.custom_id, seen[line.custom_id], line.number))
        else:
            seen[line.custom_id] = line.number
    return repeats


def estimated_tokens(line: InputLine, *, default_max_tokens: int) -> int:
    """The line's worst case, as the online path reserves it (prompt estimate + max_tokens); 0 for a line that will
    fail validation when it runs."""
    prompt, completion = estimate(line, default_max_tokens=default_max_tokens)
    return prompt + completion


def estimate(line: InputLine, *, default_max_tokens: int, cap: int | None = None) -> tuple[int, int]:
    """The line's worst case as (prompt, completion) tokens, as the online path reserves it: the prompt estimate, and
    max_tokens (``default_max_tokens`` when the line gives none) lowered to the key's and route's ``cap`` as the
    online path lowers it (``proxy.caps``); (0, 0) for a line that will fail validation when it runs."""
    if line.error is not None:
        return 0, 0
    model = ENDPOINTS[line.url]
    try:
        parsed = model.model_validate(line.body)
    except ValidationError:
        return 0, 0
    if isinstance(parsed, EmbeddingRequest):
        return parsed.estimated_tokens(), 0
    if cap is not None and (capped := caps.apply(dict(line.body), parsed, cap)) is not None:
        parsed = capped
    return tokens.estimate_prompt_tokens(parsed), tokens.completion_budget(parsed, default=default_max_tokens)
