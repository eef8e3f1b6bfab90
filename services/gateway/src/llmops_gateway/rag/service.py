"""Retrieval-augmented generation in the proxy flow: decide, retrieve, fill the template into the prompt.

``Retrieval.plan`` runs with routing (validation only), ``Retrieval.retrieve`` once quota is reserved (a refused
request costs the retriever nothing); the upstream then sees the augmented messages, the request log records them
with the retrieved point ids, and the client gets the sources.
"""

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from pydantic import ValidationError

from llmops_common.errors import APIError, validation_error
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.prompts.models import Prompt
from llmops_gateway.rag import sources as fmt
from llmops_gateway.rag.client import RetrieverClient, RetrieverUnavailable
from llmops_gateway.rag.schemas import DEFAULT_ROUTE, RagRequest, RagRoute
from llmops_gateway.rag.templates import render

logger = logging.getLogger(__name__)

_CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Plan:
    route: RagRoute
    collection: str
    top_k: int
    filter: dict | None
    score_threshold: float | None


@dataclass(slots=True)
class RagContext:
    sources: list[dict] = field(default_factory=list)  # as returned to the client
    retrieved_ids: list[str] = field(default_factory=list)  # the chunks put into the prompt
    context: bool = True  # False: the retriever was down and the answer was made without context


def context_tokens(rag: Plan | None) -> int:
    """What the context may add to the prompt, reserved with the request's quota."""
    return 0 if rag is None else rag.route.max_context_chars // _CHARS_PER_TOKEN + 64


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content or () if isinstance(p, dict) and p.get("type") == "text")


def question_of(payload: dict, kind: str) -> str:
    if kind == "chat":
        users = [m for m in payload["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        question = _text(users[-1].get("content")) if users else ""
    else:
        prompt = payload.get("prompt")
        question = prompt[0] if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str) else prompt
        if not isinstance(question, str):
            raise APIError(422, "rag needs a single text prompt", code="invalid_rag")
    if not question.strip():
        raise APIError(422, "rag needs a question: a user message with text", code="invalid_rag")
    return question


def apply_prompt(payload: dict, kind: str, *, system: str, user: str | None) -> None:
    """Puts ``system`` before the conversation (merged into a leading system message; none when empty) and, when
    the template rewrites the user turn, ``user`` in place of the last user message's text."""
    if kind == "text":
        question = user if user is not None else question_of(payload, kind)
        payload["prompt"] = f"{system}\n\n{question}" if system else question
        return
    messages = payload["messages"]
    if user is not None:
        last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
        content = messages[last].get("content")
        if isinstance(content, str):
            messages[last] = {**messages[last], "content": user}
        else:  # keep images and other parts; the text parts become the template's text
            others = [p for p in content if not (isinstance(p, dict) and p.get("type") == "text")]
            messages[last] = {**messages[last], "content": [{"type": "text", "text": user}, *others]}
    first = messages[0] if messages else {}
    if not system:
        return
    if first.get("role") in ("system", "developer") and isinstance(first.get("content"), str):
        messages[0] = {**first, "content": f"{system}\n\n{first['content']}"}
    else:
        messages.insert(0, {"role": "system", "content": system})


def _not_granted(collection: str, *, named: bool) -> APIError:
    # Distinct from the route's refusal: the route would allow it, this key may not (its grant decides, not the route).
    hint = "" if named else ' (the route\'s default collection; send "rag": false to answer without it)'
    return APIError(403, f"this key may not retrieve from {collection!r}{hint}", code="collection_not_allowed")


class Retrieval:
    """The retrieve stage, built once with the retriever's client (None: RAG requests are refused)."""

    def __init__(self, retriever: RetrieverClient | None, metrics: GatewayMetrics) -> None:
        self._retriever = retriever
        self._metrics = metrics

    def plan(self, payload: dict, route_rag: RagRoute | None, *, granted: Collection[str] | None = None) -> Plan | None:
        """Whether this request retrieves, and how. Takes ``rag`` out of the payload: it never goes upstream.

        ``granted``: the collections the request's key may retrieve from (None: any the route allows). The route's
        policy and the key's grant both apply, before quota and before the retriever is asked anything."""
        raw = payload.pop("rag", None)
        route = route_rag or DEFAULT_ROUTE
        if raw is False or (raw is None and route.collection is None):
            return None
        if self._retriever is None:
            raise APIError(400, "RAG is not available: no retriever is configured", code="rag_unavailable")
        try:
            request = RagRequest.model_validate({} if raw in (None, True) else raw)
        except ValidationError as exc:
            raise validation_error(exc.errors(), code="invalid_rag", prefix=("rag",)) from None
        collection = request.collection or route.collection
        if collection is None:
            raise APIError(422, "rag.collection is required: this route has no default collection", code="invalid_rag")
        if not route.may_use(collection):
            raise APIError(403, f"this route may not retrieve from {collection!r}", code="rag_collection_not_allowed")
        if granted is not None and collection not in granted:
            raise _not_granted(collection, named=request.collection is not None)
        filters = [f for f in (route.filter, request.filter) if f]  # the route's filter always applies
        return Plan(
            route=route,
            collection=collection,
            top_k=request.top_k or route.top_k,
            filter=filters[0] if len(filters) == 1 else ({"must": filters} if filters else None),
            score_threshold=request.score_threshold if request.score_threshold is not None else route.score_threshold,
        )

    async def retrieve(
        self, rag: Plan, payload: dict, *, prompt: Prompt, kind: str, route: str, request_id: str
    ) -> RagContext:
        """Searches and fills ``prompt`` (a RAG template) into the payload."""
        question = question_of(payload, kind)
        started = time.perf_counter()
        try:
            chunks = await self._retriever.search(
                collection=rag.collection,
                query=question,
                top_k=rag.top_k,
                filter=rag.filter,
                score_threshold=rag.score_threshold,
                request_id=request_id,
            )
        except RetrieverUnavailable as exc:
            self._metrics.rag_retrievals.labels(route, "unavailable").inc()
            logger.error(
                "retriever unavailable",
                extra={"route": route, "policy": rag.route.on_retriever_error, "error": str(exc)},
            )
            if rag.route.on_retriever_error == "fail":
                raise APIError(
                    503, "the retriever is unavailable; no answer without context", code="retriever_unavailable"
                ) from None
            apply_prompt(payload, kind, system=prompt.no_context_system, user=None)
            return RagContext(context=False)
        except APIError:
            self._metrics.rag_retrievals.labels(route, "refused").inc()
            raise
        self._metrics.rag_retrievals.labels(route, "ok").inc()
        self._metrics.rag_latency.labels(route).observe(time.perf_counter() - started)
        block, used = fmt.context_block(chunks, max_chars=rag.route.max_context_chars)
        user = None if prompt.user is None else render(prompt.user, sources=block, question=question)
        apply_prompt(payload, kind, system=render(prompt.system, sources=block, question=question), user=user)
        return RagContext(sources=fmt.public(used), retrieved_ids=[c.id for c in used])
