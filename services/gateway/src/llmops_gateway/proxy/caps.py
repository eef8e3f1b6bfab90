"""The max_tokens cap of a key and of a route: the cheapest saving is a shorter answer.

A request asking for more than the tighter cap (or for nothing: the upstream's default can be long) is sent
with the cap instead, before its quota and budget are reserved, so the worst case reserved is the capped one.
"""

from llmops_gateway.keys.auth import AuthenticatedKey
from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest
from llmops_gateway.routing.schemas import RouteSpec


def cap_for(key: AuthenticatedKey, spec: RouteSpec) -> int | None:
    caps = [c for c in (key.limits.max_tokens, spec.limits.max_tokens) if c is not None]
    return min(caps) if caps else None


def apply(
    payload: dict, parsed: ChatCompletionRequest | CompletionRequest, cap: int
) -> ChatCompletionRequest | CompletionRequest | None:
    """The request as capped (``payload`` rewritten), or None when it already asks for no more than ``cap``."""
    asked = getattr(parsed, "max_completion_tokens", None) or parsed.max_tokens
    if asked is not None and asked <= cap:
        return None
    update = {"max_tokens": cap}
    if "max_completion_tokens" in payload:  # the newer field wins at OpenAI-compatible servers: cap it too
        update["max_completion_tokens"] = cap
    payload.update(update)
    return parsed.model_copy(update=update)
