"""The choose-prompt stage: which prompt a request is sent with, once its variant is chosen.

One prompt per request, so the request log names exactly one: the chosen variant's registered prompt when it fits
the request (a RAG template when the request retrieves, a plain one when it does not), else, on a retrieving
request, the route's RAG template (built in, inline or registered). Fallback variants get the same prompt: the
prompt belongs to the arm the request was assigned to, a fallback only stands in for its upstream.
"""

from llmops_common.errors import APIError
from llmops_gateway.prompts.models import Prompt
from llmops_gateway.prompts.registry import PromptRegistry
from llmops_gateway.rag.schemas import DEFAULT_ROUTE
from llmops_gateway.rag.service import apply_prompt, question_of
from llmops_gateway.rag.templates import render
from llmops_gateway.routing.schemas import RouteSpec, Variant


class PromptStage:
    def __init__(self, registry: PromptRegistry) -> None:
        self._registry = registry

    async def choose(self, route: str, spec: RouteSpec, variant: Variant, *, retrieves: bool) -> Prompt | None:
        if variant.prompt is not None:
            prompt = await self._registry.resolve(variant.prompt, rag=None, route=route)
            if prompt.rag == retrieves:
                return prompt
        if not retrieves:
            return None
        rag = spec.rag or DEFAULT_ROUTE
        if rag.prompt_ref is not None:
            return await self._registry.resolve(rag.prompt_ref, rag=True, route=route)
        return Prompt.of_template(rag.prompt())


def apply_plain(payload: dict, kind: str, prompt: Prompt) -> None:
    """A prompt without ``{sources}`` on a request that does not retrieve: the system prompt, and the user turn
    rewritten around ``{question}`` when the template has a user message."""
    user = None
    if prompt.user is not None or kind == "text":  # a text prompt is rebuilt around its question
        question = _last_user_text(payload, kind)
        if question is None:
            needs = "a single text prompt" if kind == "text" else "a user message with text"
            raise APIError(422, f"prompt {prompt.name} needs {needs}", code="invalid_prompt_input")
        if prompt.user is not None:
            user = render(prompt.user, sources="", question=question)
    apply_prompt(payload, kind, system=prompt.system, user=user)


def _last_user_text(payload: dict, kind: str) -> str | None:
    try:
        return question_of(payload, kind)
    except APIError:
        return None
