"""Token-aware chunks: windows of ``size`` tokens of the collection's embedding model, ``overlap`` tokens shared
with the previous window, cut from the original text (so a chunk reads exactly as the document does).

Windows end between words where they can: a window that would end inside a word (on a ``##`` word piece)
ends before that word instead, unless that would shrink it by more than a quarter.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    start: int  # character offsets in the document
    end: int
    tokens: int


def _word_boundary(offsets: list[tuple[int, int]], start: int, end: int) -> int:
    """The largest ``e <= end`` with token ``e`` starting a new word (not glued to token ``e - 1``)."""
    floor = start + max(1, (end - start) * 3 // 4)
    e = end
    while e > floor and e < len(offsets) and offsets[e][0] == offsets[e - 1][1]:
        e -= 1
    return e if e > floor or e == len(offsets) else end


def chunk_text(text: str, tokenizer, *, size: int, overlap: int) -> list[Chunk]:
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    offsets = [tuple(o) for o in encoding["offset_mapping"]]
    chunks: list[Chunk] = []
    start = 0
    while start < len(offsets):
        end = min(start + size, len(offsets))
        if end < len(offsets):
            end = _word_boundary(offsets, start, end)
        first, last = offsets[start][0], offsets[end - 1][1]
        chunks.append(Chunk(index=len(chunks), text=text[first:last], start=first, end=last, tokens=end - start))
        if end == len(offsets):
            break
        start = max(end - overlap, start + 1)
    return chunks
