"""vLLM's offline engine in a batch worker: chat requests in, OpenAI chat completions out, one batched call.

On a GPU this is where batches get cheap: one ``LLM.chat`` call schedules the whole chunk with continuous batching,
with no HTTP, no per-request scheduling against interactive traffic and no streaming. vLLM is imported only here and
only when the engine starts (a worker without it never loads torch).
"""

import logging
import time
from collections.abc import Sequence

from llmops_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

# The request fields the engine honours as vLLM's server would; a line with any other (tools, logprobs,
# response_format, ...) goes through the serving path, which supports them all.
SUPPORTED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "n",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "min_tokens",
        "ignore_eos",
        "user",
        "metadata",
        "store",
        "priority",
    }
)
_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "n", "seed", "presence_penalty", "frequency_penalty")
_SAMPLING += ("repetition_penalty", "min_tokens", "ignore_eos")


def takes(body: dict) -> bool:
    """Whether the engine can run this chat request exactly as the serving path would."""
    return (
        isinstance(body.get("messages"), list)
        and SUPPORTED_FIELDS.issuperset(body)
        and not body.get("stream")
        and isinstance(body.get("n", 1), int)
    )


def served_names(settings: GatewaySettings) -> list[str]:
    """The upstream model names the engine stands for: lines whose route chose a variant with one of them."""
    return settings.batch_engine_served_names or [(settings.batch_engine_model or "").rstrip("/").rsplit("/", 1)[-1]]


class EngineFailure(Exception):
    """The engine could not run one request (e.g. a prompt longer than the model's context)."""


class VllmEngine:
    def __init__(self, settings: GatewaySettings) -> None:
        from vllm import LLM  # heavy: only a worker with the engine loads it

        started = time.perf_counter()
        self.models = served_names(settings)
        self.default_max_tokens = settings.default_max_tokens_reserve
        self._llm = LLM(model=settings.batch_engine_model, **settings.batch_engine_args)
        logger.info(
            "batch engine ready",
            extra={"model": settings.batch_engine_model, "served": self.models, "s": time.perf_counter() - started},
        )

    def chat(self, payloads: Sequence[dict]) -> list[dict | EngineFailure]:
        """Per payload, its answer's ``choices`` and ``usage`` (as OpenAI's), or the reason it could not run."""
        try:
            return self._chat(payloads)
        except Exception as exc:  # noqa: BLE001 (vLLM refuses a whole call for one bad request: run each alone)
            if len(payloads) == 1:
                return [EngineFailure(str(exc)[:500])]
            return [result for payload in payloads for result in self.chat([payload])]

    def _chat(self, payloads: Sequence[dict]) -> list[dict]:
        from vllm import SamplingParams

        params = [SamplingParams(**_sampling(p, self.default_max_tokens)) for p in payloads]
        outputs = self._llm.chat([p["messages"] for p in payloads], sampling_params=params, use_tqdm=False)
        return [_answer(output) for output in outputs]


def _sampling(payload: dict, default_max_tokens: int) -> dict:
    arguments = {name: payload[name] for name in _SAMPLING if payload.get(name) is not None}
    arguments["max_tokens"] = payload.get("max_completion_tokens") or payload.get("max_tokens") or default_max_tokens
    if stop := payload.get("stop"):
        arguments["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return arguments


def _answer(output) -> dict:
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": completion.text},
            "finish_reason": completion.finish_reason or "stop",
            "logprobs": None,
        }
        for i, completion in enumerate(output.outputs)
    ]
    prompt = len(output.prompt_token_ids or ())
    completion = sum(len(c.token_ids) for c in output.outputs)
    return {
        "choices": choices,
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }
