"""Relaying the OpenAI endpoints to vLLM: the request body goes through untouched, answers stream unbuffered.

The service checks the model itself (the base model or a loaded adapter) so that an unknown one is a 404 in the
platform's error format, and a known adapter still loading after a vLLM restart is a 503 to retry, not a 404.
vLLM's own errors are rewritten into the same format; its 5xx become 502 (the engine failed, not the request).
"""

import logging
import time

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response

from llmops_common import tracing
from llmops_common.contracts.adapters import MODEL_VERSION_HEADER
from llmops_common.errors import APIError, error_body
from llmops_common.http import describe_error
from llmops_common.requests import parse_json_object, read_body
from llmops_common.responses import OrjsonResponse
from llmops_common.streaming import ClientDisconnected, DisconnectAwareStream, cancelled_on_disconnect
from llmops_inference.engine.client import error_message
from llmops_inference.state import InferenceState

logger = logging.getLogger(__name__)

_RETRY_SOON = {"retry-after": "5"}
_STREAM_BROKE = (
    b'data: {"error": {"message": "model server stream interrupted", "type": "server_error", "code": "vllm_error"}}\n\n'
)


def requested_model(body: bytes) -> str:
    model = parse_json_object(body).get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "model is required: the base model or an adapter name", code="invalid_request")
    return model


def check_model(state: InferenceState, model: str) -> None:
    if not state.engine.up:
        raise APIError(503, "the model server is starting or restarting", code="vllm_unavailable", headers=_RETRY_SOON)
    if model == state.base_model or state.adapters.is_loaded(model):
        return
    if model in state.adapters.wanted:
        raise APIError(
            503, f"adapter '{model}' is being loaded; retry shortly", code="adapter_loading", headers=_RETRY_SOON
        )
    raise APIError(404, f"The model '{model}' does not exist", code="model_not_found")


def vllm_error(status: int, body: bytes) -> OrjsonResponse:
    """vLLM's error answer in the platform's OpenAI error format."""
    message, param = error_message(body), None
    try:
        param = (orjson.loads(body).get("error") or {}).get("param")
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if status >= 500 or status in (401, 403):  # 401/403: our internal key was refused, a deployment error
        error = APIError(502, f"the model server failed: {message}", code="vllm_error")
    elif status == 404:
        error = APIError(404, message, code="model_not_found")
    else:
        error = APIError(status, message, code="invalid_request" if status in (400, 422) else None)
    body = error_body(error.message, type=error.type, code=error.code, param=param if isinstance(param, str) else None)
    return OrjsonResponse(body, status_code=error.status, headers=_RETRY_SOON if status == 429 else None)


async def relay(state: InferenceState, request: Request, *, path: str, endpoint: str) -> Response:
    started = time.perf_counter()
    body = await read_body(request, max_bytes=state.settings.max_body_bytes)
    model = requested_model(body)
    try:
        check_model(state, model)
    except APIError as exc:
        known = model == state.base_model or model in state.adapters.wanted
        _count(state, endpoint, model if known else "unknown", exc.status, started)  # labels stay bounded
        raise
    headers = {**state.vllm.headers, "content-type": "application/json", "x-request-id": request.state.request_id}
    if tracing.enabled():
        _trace_request(endpoint, model)
    version = state.adapters.served_version(model)  # read before the call: the version this request is sent to
    answer_headers = {MODEL_VERSION_HEADER: version} if version else None
    try:
        async with cancelled_on_disconnect(request):
            response = await state.http.post(state.vllm.base_url + path, data=body, headers=headers)
            if not response.content_type.startswith("text/event-stream"):
                try:
                    answer = await response.read()
                finally:
                    response.release()
    except ClientDisconnected:
        _count(state, endpoint, model, 499, started)  # 499: nginx's "client closed request"
        return Response(status_code=499)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        logger.warning("vLLM did not answer", extra={"error": describe_error(exc)})
        _count(state, endpoint, model, 503, started)
        raise APIError(503, "the model server did not answer", code="vllm_unavailable", headers=_RETRY_SOON) from None
    if response.content_type.startswith("text/event-stream"):
        return DisconnectAwareStream(
            _stream(state, response, endpoint, model, started), media_type="text/event-stream", headers=answer_headers
        )
    _count(state, endpoint, model, response.status, started)
    if response.status >= 400:
        return vllm_error(response.status, answer)
    if tracing.enabled():
        _trace_answer(answer)
    return Response(answer, status_code=response.status, media_type=response.content_type, headers=answer_headers)


def _trace_request(endpoint: str, model: str) -> None:
    """GenAI attributes on this request's span (the gateway's model-call span is its parent)."""
    operation = "chat" if "chat" in endpoint else "text_completion"
    tracing.set_attributes(
        {"gen_ai.operation.name": operation, "gen_ai.provider.name": "vllm", "gen_ai.request.model": model}
    )


def _trace_answer(answer: bytes) -> None:
    """Token counts and finish reasons of a whole answer (a stream's are on the gateway's span)."""
    try:
        document = orjson.loads(answer)
        usage = document.get("usage") or {}
        reasons = [c.get("finish_reason") for c in document.get("choices") or () if isinstance(c, dict)]
        attributes = {
            "gen_ai.response.model": document.get("model"),
            "gen_ai.usage.input_tokens": usage.get("prompt_tokens"),
            "gen_ai.usage.output_tokens": usage.get("completion_tokens"),
            "gen_ai.response.finish_reasons": [r for r in reasons if isinstance(r, str)] or None,
        }
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return
    tracing.set_attributes({k: v for k, v in attributes.items() if isinstance(v, str | int | list)})


async def _stream(state: InferenceState, response: aiohttp.ClientResponse, endpoint: str, model: str, started: float):
    """vLLM's SSE bytes as they arrive; closing the response early (client gone) stops the generation."""
    status, finished = 200, False
    try:
        async for data in response.content.iter_any():
            yield data
        finished = True
    except (aiohttp.ClientError, TimeoutError) as exc:
        status = 502
        logger.warning("vLLM stream broke", extra={"error": describe_error(exc)})
        yield _STREAM_BROKE
    finally:
        if finished:
            response.release()
        else:
            response.close()
            status = 499 if status == 200 else status
        _count(state, endpoint, model, status, started)


async def models(state: InferenceState) -> Response:
    """vLLM's model list: the base model and every loaded adapter (``parent`` names the base)."""
    if not state.engine.up:
        raise APIError(503, "the model server is starting or restarting", code="vllm_unavailable", headers=_RETRY_SOON)
    try:
        async with state.http.get(state.vllm.base_url + "/v1/models", headers=state.vllm.headers) as response:
            answer = await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError):
        raise APIError(503, "the model server did not answer", code="vllm_unavailable", headers=_RETRY_SOON) from None
    if response.status >= 400:
        return vllm_error(response.status, answer)
    if tracing.enabled():
        _trace_answer(answer)
    return Response(answer, media_type="application/json")


def _count(state: InferenceState, endpoint: str, model: str, status: int, started: float) -> None:
    state.metrics.requests.labels(endpoint, model, str(status)).inc()
    state.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
