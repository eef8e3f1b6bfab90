"""Token-aware chunking with the real all-MiniLM-L6-v2 tokenizer, and text extraction."""

import itertools

import pytest

from llmops_retriever.documents.chunking import chunk_text
from llmops_retriever.documents.extract import extract_text, normalise


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from llmops_retriever.embedding.models import _builtin_path

    return AutoTokenizer.from_pretrained(str(_builtin_path()), local_files_only=True)


def tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


TEXT = " ".join(
    f"Sentence {i} talks about unbelievably intercontinental shipbuilding in harbour number {i}." for i in range(60)
)


@pytest.mark.parametrize(("size", "overlap"), [(32, 8), (64, 16), (200, 40), (50, 0)])
def test_chunks_fit_the_window_overlap_and_cover_the_text(tokenizer, size, overlap):
    chunks = chunk_text(TEXT, tokenizer, size=size, overlap=overlap)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].start == 0 and chunks[-1].end == len(TEXT)
    for chunk in chunks:
        assert chunk.text == TEXT[chunk.start : chunk.end]
        assert chunk.tokens <= size and tokens(tokenizer, chunk.text) <= size
        assert not chunk.text[0].isspace() and not chunk.text[-1].isspace()
    for before, after in itertools.pairwise(chunks):
        assert not TEXT[before.end : after.start].strip()  # no gap but whitespace: every word is in some chunk
        if overlap:
            assert before.end - after.start > 0  # and neighbours share text
        # Windows end between words: the next character after a chunk is not the rest of a word.
        assert not TEXT[before.end : before.end + 1].isalnum()


def test_a_short_text_is_one_chunk_and_long_words_still_progress(tokenizer):
    assert [c.text for c in chunk_text("Just one line.", tokenizer, size=32, overlap=8)] == ["Just one line."]
    one_word = "-".join(["harbour"] * 200)  # no whitespace in 1,600 characters: cut inside it, never loop forever
    chunks = chunk_text(one_word, tokenizer, size=16, overlap=4)
    assert len(chunks) > 1 and chunks[-1].end == len(one_word)


def test_normalise_and_html():
    assert normalise("  a \t b\r\n\r\n\r\n\n c  ") == "a b\n\nc"
    html = b"<p>One &amp; two</p><ul><li>three</li><li>four</li></ul><noscript>no</noscript><!-- c -->"
    assert extract_text(html, "html") == "One & two\n\nthree\n\nfour"
