"""OpenAI-compatible embeddings of the retriever's models: what the gateway's ``/v1/embeddings`` reaches by default."""

import base64

import numpy as np

from llmops_common.contracts.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from llmops_common.errors import APIError
from llmops_retriever.embedding.models import Embedder, EmbeddingModels, UnknownModel


async def embed(models: EmbeddingModels, request: EmbeddingRequest) -> EmbeddingResponse:
    try:
        embedder = await models.aget(request.model)
    except UnknownModel as exc:
        raise APIError(404, str(exc), code="model_not_found", param="model") from None
    if request.dimensions is not None and request.dimensions != embedder.dimension:
        # A sentence-transformers model has one width; cutting vectors would silently break their geometry.
        raise APIError(
            400,
            f"model {request.model!r} embeds in {embedder.dimension} dimensions; dimensions={request.dimensions} "
            "is not supported",
            code="unsupported_dimensions",
            param="dimensions",
        )
    texts = _texts(embedder, request.items())
    tokens = sum(min(embedder.count_tokens(text), embedder.max_tokens) for text in texts)
    vectors = await models.embed(request.model, texts, purpose="document")
    return EmbeddingResponse(
        data=[Embedding(index=i, embedding=_encode(v, request.encoding_format)) for i, v in enumerate(vectors)],
        model=request.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _texts(embedder: Embedder, items: list[str] | list[list[int]]) -> list[str]:
    """Token arrays are ids of the model's own tokenizer: decoded back to text, which the model tokenizes again."""
    if not items or isinstance(items[0], str):
        return items
    vocab = embedder.vocab_size
    for item in items:
        if max(item) >= vocab:
            raise APIError(
                400, f"token id {max(item)} is outside the vocabulary (< {vocab})", code="invalid_tokens", param="input"
            )
    return [embedder.decode(item) for item in items]


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()  # OpenAI's: little-endian float32
    return vector.tolist()
