"""BM25 sparse vectors for hybrid search, from Qdrant Edge's own BM25 (English tokenizer, stemming, stopwords).

Both engines get the same vectors: documents carry term-frequency weights, queries one weight per term, and the
engine applies IDF over the collection at search time (the sparse vector is declared with the IDF modifier).
"""

import qdrant_edge as qe

from llmops_retriever.store.base import SparseVec

_BM25 = qe.Bm25()  # stateless: IDF comes from the engine, not from here


def document_vector(text: str) -> SparseVec:
    vector = _BM25.embed_document(text)
    return SparseVec(indices=list(vector.indices), values=list(vector.values))


def query_vector(text: str) -> SparseVec:
    vector = _BM25.embed_query(text)
    return SparseVec(indices=list(vector.indices), values=list(vector.values))
