"""One batch line sent through the gateway's serving path, as the key that made the batch, and its outcome in
OpenAI's output-file format.

Through the gateway, not straight to the model: the key's quotas and routes apply, tokens are counted and
reconciled, and the line becomes a request-log record marked with its batch, like any online request. Its request
id is derived from the batch and line, so a line run again after a worker died is the same request to the request
log (the feedback service stores a request id once).
"""

import asyncio
import logging
from dataclasses import dataclass

import httpx

from llmops_gateway.batches.input import InputLine

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LineOutcome:
    ok: bool
    output: dict  # the output (ok) or error file's line
    prompt_tokens: int = 0
    completion_tokens: int = 0


def request_id(batch_id: str, index: int) -> str:
    return f"{batch_id}-{index}"


def succeeded(batch_id: str, index: int, custom_id: str | None, body: dict) -> LineOutcome:
    """A line's answer (an OpenAI response body) as an output-file line, with its token counts."""
    rid = request_id(batch_id, index)
    output = {
        "id": f"batch_req_{rid}",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": rid, "body": body},
        "error": None,
    }
    usage = body.get("usage") or {}
    return LineOutcome(True, output, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def failed(batch_id: str, index: int, custom_id: str | None, code: str, message: str, response=None) -> LineOutcome:
    rid = request_id(batch_id, index)
    output = {
        "id": f"batch_req_{rid}",
        "custom_id": custom_id,
        "response": response,
        "error": {"code": code, "message": message},
    }
    return LineOutcome(False, output)


class LineSender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        token: str,
        key_id: str,
        batch_id: str,
        endpoint: str,
        retry_limit: int,
        priority: int | None = None,
    ) -> None:
        self._client, self._token, self._key_id = client, token, key_id
        self._batch_id, self._endpoint, self._retry_limit = batch_id, endpoint, retry_limit
        self._priority = priority

    async def run(self, index: int, line: InputLine, stopping) -> LineOutcome | None:
        """The line's outcome; None when ``stopping()`` turned true while it waited for quota (it runs later)."""
        batch_id = self._batch_id
        if line.error is not None:
            return failed(batch_id, index, line.custom_id, "invalid_request", line.error)
        if line.url != self._endpoint:
            message = f"line {line.number}: url {line.url} differs from the batch's endpoint {self._endpoint}"
            return failed(batch_id, index, line.custom_id, "invalid_url", message)
        rid = request_id(batch_id, index)
        headers = {
            "authorization": f"Bearer {self._token}",
            "x-llmops-batch-key": self._key_id,
            "x-llmops-batch-id": batch_id,
            "x-request-id": rid,
        }
        body = line.body
        if self._priority is not None and line.url != "/v1/embeddings":
            body = {**body, "priority": self._priority}  # behind interactive requests in vLLM's queue
        retries, delay = 0, 0.5
        while True:
            try:
                response = await self._client.post(line.url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                status, body, error = None, None, repr(exc)
            else:
                status, error = response.status_code, None
                body = _json(response)
                if status == 200:
                    return succeeded(batch_id, index, line.custom_id, body or {})
                code = ((body or {}).get("error") or {}).get("code")
                if status == 429 and code != "request_over_limit":
                    # The key's quota applies to its batches: wait as long as the gateway says, however often.
                    if stopping():
                        return None
                    await asyncio.sleep(min(float(response.headers.get("retry-after") or 1), 60))
                    continue
            if (status is None or status >= 500) and retries < self._retry_limit:
                retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            response_part = {"status_code": status, "request_id": rid, "body": body} if status else None
            message = ((body or {}).get("error") or {}).get("message") or error or f"status {status}"
            code = ((body or {}).get("error") or {}).get("code") or (
                "upstream_unreachable" if status is None else "request_failed"
            )
            return failed(batch_id, index, line.custom_id, code, message, response_part)


def _json(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return {"error": {"message": response.text[:500], "code": None}}
