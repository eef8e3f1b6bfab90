"""Deterministic scorers: cheap, repeatable checks that need no model. Each returns a score in [0, 1] and a
rationale a person can check."""

import re
import unicodedata
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+")
_CITED_SENTENCE = re.compile(r"[^.!?\n]*?\[\d+\][^.!?\n]*")
_CITATION = re.compile(r"\[(\d+)\]")
# Words that carry no fact: a citation check on them would pass any answer.
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "do",
        "does",
        "did",
        "not",
        "no",
        "yes",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "me",
        "my",
        "your",
        "our",
        "their",
        "there",
        "here",
        "according",
        "source",
        "sources",
        "answer",
        "question",
        "please",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
    ]
)


@dataclass(frozen=True)
class Scored:
    score: float  # in [0, 1]
    rationale: str


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_WORD.findall(text))


def content_words(text: str) -> set[str]:
    return {w for w in normalise(text).split() if w not in _STOP}


def exact_match(answer: str, reference: str) -> Scored:
    same = normalise(answer) == normalise(reference)
    return Scored(1.0 if same else 0.0, "the answer equals the reference" if same else "the answer differs")


def contains_reference(answer: str, reference: str, *, question: str | None = None, min_share: float = 0.8) -> Scored:
    """A short reference must appear as a phrase; a long one by its content words (``min_share`` of them). Words
    of the question do not count: an answer that only repeats the question must not pass."""
    said, ref = normalise(answer), normalise(reference)
    if not ref:
        return Scored(0.0, "the reference is empty")
    if f" {ref} " in f" {said} ":
        return Scored(1.0, "the answer contains the reference")
    asked = content_words(question or "")
    wanted = content_words(reference) - asked or content_words(reference)
    if len(wanted) < 3:  # too few words to judge by share: the phrase test above decides
        return Scored(0.0, "the answer does not contain the reference")
    found = wanted & set(said.split())
    share = len(found) / len(wanted)
    score = 1.0 if share >= min_share else share * 0.5  # a partial overlap stays a fail, but an ordered one
    missing = ", ".join(sorted(wanted - found)[:5])
    return Scored(
        score, f"{len(found)} of {len(wanted)} reference words present" + (f"; missing {missing}" if missing else "")
    )


def citation_check(answer: str, sources: list[str], *, question: str | None = None, min_share: float = 0.6) -> Scored:
    """Each sentence citing ``[n]`` must cite an existing source holding ``min_share`` of the sentence's own content
    words (those not in the question). The score is the share of such citing sentences that hold; an answer that
    cites nothing scores 0 when there were sources to cite."""
    sentences = [s.strip() for s in _CITED_SENTENCE.findall(answer) if _CITATION.search(s)]
    if not sentences:
        return Scored(0.0, "the answer cites no source" if sources else "no sources to cite")
    asked = content_words(question or "")
    good, problems = 0, []
    for sentence in sentences:
        cited = [int(n) for n in _CITATION.findall(sentence)]
        missing = [n for n in cited if not 1 <= n <= len(sources)]
        if missing:
            problems.append(f"[{missing[0]}] does not exist")
            continue
        claim = content_words(_CITATION.sub(" ", sentence)) - asked
        if not claim:
            problems.append("a citing sentence states nothing beyond the question")
            continue
        held = set().union(*(content_words(sources[n - 1]) for n in cited))
        share = len(claim & held) / len(claim)
        if share >= min_share:
            good += 1
        else:
            problems.append(f"{_cites(cited)} holds {share:.0%} of what its sentence states")
    rationale = f"{good} of {len(sentences)} citing sentences supported by the cited source"
    return Scored(good / len(sentences), rationale + ("; " + "; ".join(problems[:3]) if problems else ""))


def _cites(cited: list[int]) -> str:
    return "".join(f"[{n}]" for n in cited)
