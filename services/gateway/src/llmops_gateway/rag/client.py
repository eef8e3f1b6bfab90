"""The retriever's search API, as the gateway calls it (with its read token)."""

import logging

import aiohttp
import orjson
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from llmops_common import tracing
from llmops_common.contracts.search import SearchHit, SearchResponse
from llmops_common.errors import APIError
from llmops_common.http import describe_error, read_limited

logger = logging.getLogger(__name__)


class RetrieverUnavailable(Exception):
    """Unreachable, timed out, or failing on its side: the route's ``on_retriever_error`` decides."""


class RetrieverClient:
    def __init__(
        self, http: aiohttp.ClientSession, *, url: str, token: str, timeout_s: float, max_answer_bytes: int
    ) -> None:
        self._http = http
        self._max_answer_bytes = max_answer_bytes  # past it the answer is cut: the retriever is unavailable
        self._url = url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def search(
        self,
        *,
        collection: str,
        query: str,
        top_k: int,
        filter: dict | None,
        score_threshold: float | None,
        request_id: str,
    ) -> list[SearchHit]:
        """Raises ``RetrieverUnavailable``, or an ``APIError`` the client caused (unknown collection, bad filter).

        With tracing on the search is a client span of its own (``retrieve``; the collection an attribute, since a
        request may name it), current while the call runs, so the ``traceparent`` the session adds makes the
        retriever's request span its child."""
        attributes = {"llmops.rag.collection": collection, "llmops.rag.top_k": top_k}
        with tracing.span("retrieve", kind=SpanKind.CLIENT, attributes=attributes) as span:
            hits = await self._search(
                collection=collection,
                query=query,
                top_k=top_k,
                filter=filter,
                score_threshold=score_threshold,
                request_id=request_id,
            )
            if span is not None:
                span.set_attribute("llmops.rag.hits", len(hits))
            return hits

    async def _search(
        self,
        *,
        collection: str,
        query: str,
        top_k: int,
        filter: dict | None,
        score_threshold: float | None,
        request_id: str,
    ) -> list[SearchHit]:
        body = {"query": query, "top_k": top_k, "filter": filter, "score_threshold": score_threshold}
        try:
            async with self._http.post(
                f"{self._url}/v1/collections/{collection}/search",
                data=orjson.dumps({k: v for k, v in body.items() if v is not None}),
                headers={**self._headers, "x-request-id": request_id},
                timeout=self._timeout,
            ) as response:
                payload = await read_limited(response, self._max_answer_bytes)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetrieverUnavailable(describe_error(exc)) from None
        if status == 200:
            try:
                return SearchResponse.model_validate_json(payload).data
            except ValidationError as exc:
                raise RetrieverUnavailable(f"unexpected search answer: {exc!r}") from None
        message = _message(payload)
        if status == 404:
            raise APIError(404, f"RAG collection {collection!r} not found", code="rag_collection_not_found")
        if status in (400, 422):
            raise APIError(422, f"rag: {message}", code="invalid_rag")
        # 401/403 (a wrong token) and 5xx: the retriever cannot serve us; not the client's doing.
        logger.error("retriever answered %s", status, extra={"error": message})
        raise RetrieverUnavailable(f"retriever answered {status}: {message}")


def _message(payload: bytes) -> str:
    try:
        return str(orjson.loads(payload)["error"]["message"])[:500]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return payload[:200].decode(errors="replace")
