"""The gateway's side of batch lines run on a worker's own engine (``engine_schemas``): admitting them takes every
stage of an online request up to the upstream (the same ``CompletionPipeline.admit``: key, route, quota, rules,
prompt, context), and settling them the same account-and-log stage (spend, quota reconciliation, a request-log
record marked with the batch). Only the upstream call is the engine's.
"""

import time

import orjson

from llmops_common.errors import APIError, error_body
from llmops_gateway.batches.engine_schemas import (
    AdmitRequest,
    AdmitResponse,
    AdmittedLine,
    EngineOutcome,
    HeldQuota,
    RefusedLine,
    SettleRequest,
    Ticket,
)
from llmops_gateway.batches.worker.lines import request_id
from llmops_gateway.keys.auth import AuthenticatedKey
from llmops_gateway.limits import Limits
from llmops_gateway.proxy.accounting import Call, Outcome
from llmops_gateway.proxy.pipeline import BatchLine, CompletionPipeline, parse
from llmops_gateway.proxy.sse import usage_of
from llmops_gateway.rag.service import RagContext

ENGINE_URL = "batch-engine://local"  # the "upstream" a trace names for a line a worker's engine ran


async def admit(
    pipeline: CompletionPipeline, *, authorization: str | None, batch_id: str, data: AdmitRequest
) -> AdmitResponse:
    """``authorization``: the batch workers' token (the caller checked it), with which each line is admitted for
    the batch's key."""
    answer, served = AdmitResponse(), set(data.models)
    for line in data.lines:
        try:
            admitted = await pipeline.admit(
                kind="chat",
                request_id=request_id(batch_id, line.index),
                authorization=authorization,
                body=orjson.dumps(line.body),
                batch=BatchLine(key_id=data.key_id, batch_id=batch_id),
            )
        except APIError as exc:
            retry_after = (exc.headers or {}).get("retry-after")
            answer.refused.append(
                RefusedLine(
                    index=line.index,
                    status=exc.status,
                    error=error_body(exc.message, type=exc.type, code=exc.code, param=exc.param)["error"],
                    retry_after_s=float(retry_after) if retry_after else None,
                )
            )
            continue
        call, variant = admitted.call, admitted.variants[0]
        if variant.model not in served:
            pipeline.withdraw(call)  # the serving path admits it again, and accounts for it
            answer.serve.append(line.index)
            continue
        ticket = Ticket(
            request_id=call.request_id,
            key_id=call.key.id,
            team=call.key.team,
            route=call.route,
            variant=variant.name,
            model=variant.model,
            started_at=call.started_wall,
            reservation=HeldQuota.of(call.reservation.held()) if call.reservation is not None else None,
            rule=call.rule,
            prompt_name=call.prompt_name,
            prompt_version=call.prompt_version,
            retrieved_ids=call.rag.retrieved_ids if call.rag is not None else [],
        )
        answer.admitted.append(
            AdmittedLine(
                index=line.index,
                ticket=ticket,
                payload=admitted.payload,
                sources=call.rag.sources if call.rag is not None else None,
            )
        )
    return answer


def settle(pipeline: CompletionPipeline, *, batch_id: str, data: SettleRequest) -> int:
    """Accounts for every line; returns how many. A key revoked since its line was admitted is still charged: the
    engine did the work."""
    ending = [(_call(line, batch_id), _outcome(line)) for line in data.lines]  # all valid, or none is settled
    for call, outcome in ending:
        pipeline.settle(call, outcome)
    return len(ending)


def _call(line: EngineOutcome, batch_id: str) -> Call:
    ticket = line.ticket
    _, parsed = parse(orjson.dumps(line.payload), "chat")
    # The key as admitted: accounting reads its id and team only.
    key = AuthenticatedKey(id=ticket.key_id, name="", limits=Limits(), allowed_routes=None, team=ticket.team)
    reservation = ticket.reservation.held() if ticket.reservation is not None else None
    started = time.perf_counter() - max(0.0, time.time() - ticket.started_at)
    call = Call(ticket.request_id, "chat", key, ticket.route, parsed, reservation, started, ticket.started_at)
    call.batch_id = batch_id
    call.rule, call.prompt_name, call.prompt_version = ticket.rule, ticket.prompt_name, ticket.prompt_version
    if ticket.retrieved_ids:
        call.rag = RagContext(retrieved_ids=ticket.retrieved_ids)
    return call


def _outcome(line: EngineOutcome) -> Outcome:
    ticket = line.ticket
    return Outcome(
        line.status,
        variant=ticket.variant,
        model=ticket.model,
        usage=usage_of(line.usage),
        answer=line.answer,
        upstream_s=line.engine_s,
        error=line.error,
        base_url=ENGINE_URL,
    )
