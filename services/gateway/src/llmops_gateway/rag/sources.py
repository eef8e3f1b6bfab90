"""Retrieved chunks: as numbered context in the prompt, and as the ``sources`` returned with the answer."""

import time

import orjson

from llmops_common.contracts.search import SearchHit

SNIPPET_CHARS = 300


def context_block(chunks: list[SearchHit], *, max_chars: int) -> tuple[str, list[SearchHit]]:
    """``[1] text`` per chunk, best first, within ``max_chars``; returns the block and the chunks it holds."""
    lines, used, total = [], [], 0
    for chunk in chunks:
        text = " ".join(chunk.text.split())
        room = max_chars - total
        if room <= 0:
            break
        line = f"[{len(used) + 1}] {text}"
        if len(line) > room:
            if used:  # a later chunk that does not fit is left out rather than cut
                break
            line = line[: max(0, room - 1)] + "…"
        lines.append(line)
        used.append(chunk)
        total += len(line) + 1
    return "\n".join(lines) if lines else "(no relevant sources were found)", used


def public(chunks: list[SearchHit]) -> list[dict]:
    """What the client gets: ``index`` is the [n] the prompt cites the chunk by."""
    return [
        {
            "index": i,
            "id": c.id,
            "document_id": c.document_id,
            "chunk_index": c.chunk_index,
            "score": c.score,
            "snippet": c.text if len(c.text) <= SNIPPET_CHARS else c.text[: SNIPPET_CHARS - 1] + "…",
            "metadata": c.metadata,
        }
        for i, c in enumerate(chunks, start=1)
    ]


def sse_event(sources: list[dict], *, request_id: str, model: str, kind: str) -> bytes:
    """The final event of a streamed RAG answer, sent just before ``data: [DONE]``. Shaped like the usage chunk
    (no choices), so OpenAI clients that handle that chunk pass this one through too."""
    event = {
        "id": request_id,
        "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "sources": sources,
    }
    return b"data: " + orjson.dumps(event) + b"\n\n"
