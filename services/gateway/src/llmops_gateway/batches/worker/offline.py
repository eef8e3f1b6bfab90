"""Chat lines on the worker's own engine, a chunk at a time: the gateway admits them (key, route, quota, prompt,
context: ``POST /internal/batches/{id}/admit``), the engine answers every admitted line in one batched call, and the
gateway accounts for them (spend, quota reconciliation, request log: ``.../settle``) before they are recorded.

Settled before recorded: a worker that dies in between runs those lines again (the request log stores a request id
once; the quota is charged twice for them, never zero times). Lines whose route chose a variant the engine does not
serve come back as ``serve``: the shard sends them through the gateway like any line.
"""

import asyncio
import time
from dataclasses import dataclass, field

import httpx
import orjson

from llmops_gateway.batches.engine_schemas import AdmitResponse, AdmittedLine, EngineOutcome, SettleRequest
from llmops_gateway.batches.input import InputLine
from llmops_gateway.batches.worker.engine import EngineFailure, VllmEngine
from llmops_gateway.batches.worker.lines import LineOutcome, failed, request_id, succeeded


@dataclass(slots=True)
class Round:
    """What became of a chunk: outcomes to record, lines for the serving path, lines to admit again later."""

    outcomes: list[tuple[int, LineOutcome]] = field(default_factory=list)
    serve: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    wait_s: float = 0.0  # before the retries: what the gateway's quota refusals asked for


class EngineLines:
    def __init__(
        self,
        client: httpx.AsyncClient,
        engine: VllmEngine,
        *,
        token: str,
        key_id: str,
        batch_id: str,
        retry_limit: int,
    ) -> None:
        self._client, self._engine = client, engine
        self._headers = {"authorization": f"Bearer {token}"}
        self._key_id, self._batch_id, self._retry_limit = key_id, batch_id, retry_limit

    async def run(self, chunk: list[tuple[int, InputLine]]) -> Round:
        custom_ids = {index: line.custom_id for index, line in chunk}
        admit = {
            "key_id": self._key_id,
            "models": self._engine.models,
            "lines": [{"index": index, "body": line.body} for index, line in chunk],
        }
        admitted = AdmitResponse.model_validate(await self._post("admit", admit))
        result = Round(serve=admitted.serve)
        for refused in admitted.refused:
            code = refused.error.get("code")
            if refused.status == 429 and code != "request_over_limit":  # waiting cures it: admitted again later
                result.retry.append(refused.index)
                result.wait_s = max(result.wait_s, min(refused.retry_after_s or 1.0, 60.0))
                continue
            response = {
                "status_code": refused.status,
                "request_id": request_id(self._batch_id, refused.index),
                "body": {"error": refused.error},
            }
            message = refused.error.get("message") or f"status {refused.status}"
            outcome = failed(self._batch_id, refused.index, custom_ids[refused.index], code, message, response)
            result.outcomes.append((refused.index, outcome))
        if admitted.admitted:
            settled = await self._generate(admitted.admitted, custom_ids, result)
            await self._post("settle", SettleRequest(lines=settled).model_dump(mode="json"))
        return result

    async def _generate(self, lines: list[AdmittedLine], custom_ids: dict, result: Round) -> list[EngineOutcome]:
        started = time.perf_counter()
        answers = await asyncio.to_thread(self._engine.chat, [line.payload for line in lines])
        share = (time.perf_counter() - started) / len(lines)  # the batched call's time, shared by its lines
        settled = []
        for line, answer in zip(lines, answers, strict=True):
            ticket, custom_id = line.ticket, custom_ids[line.index]
            if isinstance(answer, EngineFailure):
                settled.append(EngineOutcome(ticket=ticket, payload=line.payload, status=400, error=str(answer)))
                body = {"error": {"message": str(answer), "type": "invalid_request_error", "code": None}}
                response = {"status_code": 400, "request_id": ticket.request_id, "body": body}
                outcome = failed(self._batch_id, line.index, custom_id, "invalid_request", str(answer), response)
            else:
                body = {
                    "id": f"chatcmpl-{ticket.request_id}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": ticket.model,
                    **answer,
                }
                if line.sources is not None:
                    body["sources"] = line.sources  # as the gateway adds them online
                text = answer["choices"][0]["message"]["content"] if answer["choices"] else None
                settled.append(
                    EngineOutcome(
                        ticket=ticket,
                        payload=line.payload,
                        status=200,
                        usage=answer["usage"],
                        answer=text,
                        engine_s=share,
                    )
                )
                outcome = succeeded(self._batch_id, line.index, custom_id, body)
            result.outcomes.append((line.index, outcome))
        return settled

    async def _post(self, step: str, body: dict) -> dict:
        """The gateway's answer; retried on a broken connection or a 5xx, raised after the retry limit (the shard
        then ends with its lease, and another run takes the lines up)."""
        path, delay = f"/internal/batches/{self._batch_id}/{step}", 0.5
        for attempt in range(self._retry_limit + 1):
            try:
                response = await self._client.post(
                    path, content=orjson.dumps(body), headers={**self._headers, "content-type": "application/json"}
                )
                if response.status_code < 500:
                    response.raise_for_status()
                    return response.json()
            except httpx.TransportError:
                if attempt == self._retry_limit:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)
        raise RuntimeError(f"the gateway failed {step} for batch {self._batch_id} {self._retry_limit + 1} times")
