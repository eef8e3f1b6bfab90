"""Token estimates for reserving quota before the upstream answers (reconciled with real usage after)."""

from llmops_gateway.proxy.schemas import ChatCompletionRequest, CompletionRequest

_CHARS_PER_TOKEN = 4  # a common rule of thumb for English BPE vocabularies
_PER_MESSAGE = 4  # chat template tokens around each message


def _text_tokens(text: str) -> int:
    return (len(text) + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN


def estimate_prompt_tokens(request: ChatCompletionRequest | CompletionRequest) -> int:
    if isinstance(request, ChatCompletionRequest):
        total = 3
        for message in request.messages:
            total += _PER_MESSAGE
            if isinstance(message.content, str):
                total += _text_tokens(message.content)
            elif message.content:
                total += sum(_text_tokens(str(part.get("text", ""))) for part in message.content)
        return total
    prompt = request.prompt
    if isinstance(prompt, str):
        return _text_tokens(prompt)
    if prompt and isinstance(prompt[0], int):
        return len(prompt)
    return sum(_text_tokens(p) if isinstance(p, str) else len(p) for p in prompt)


def completion_budget(request: ChatCompletionRequest | CompletionRequest, *, default: int) -> int:
    limit = getattr(request, "max_completion_tokens", None) or request.max_tokens or default
    return limit * request.n


def prompt_text(request: ChatCompletionRequest | CompletionRequest) -> list[dict] | str | list:
    """The prompt as it goes into the request log."""
    if isinstance(request, ChatCompletionRequest):
        return [m.model_dump(exclude_none=True) for m in request.messages]
    return request.prompt
