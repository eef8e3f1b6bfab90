"""Deterministic scorers and the judge's answer parser on fixed cases, adversarial answers included: an answer that
only repeats the question, one citing a source that does not say it, one citing a source that does not exist."""

import pytest

from llmops_feedback.evaluation import scorers
from llmops_feedback.evaluation.items import question_of, sources_of
from llmops_feedback.evaluation.judge import Item, messages, parse
from llmops_feedback.evaluation.rubrics import RUBRICS

QUESTION = "Who founded the town of Quenterby?"
REFERENCE = "Odalys Brenvik founded Quenterby in 1712."
SOURCES = [
    "The harbour of Marrowgate freezes every winter.",
    "The town of Quenterby was founded in 1712 by the glassmaker Odalys Brenvik.",
]


def test_exact_match_ignores_case_and_punctuation_only():
    assert scorers.exact_match("Paris.", "paris").score == 1.0
    assert scorers.exact_match("Paris, France", "Paris").score == 0.0


@pytest.mark.parametrize(
    ("answer", "passes"),
    [
        ("Odalys Brenvik founded Quenterby in 1712.", True),
        ("It was founded in 1712 by Odalys Brenvik, a glassmaker.", True),  # same facts, other order
        ("Quenterby was founded by someone in the eighteenth century.", False),
        ("Who founded the town of Quenterby? The town of Quenterby was founded.", False),  # repeats the question
        ("", False),
    ],
)
def test_contains_reference(answer, passes):
    scored = scorers.contains_reference(answer, REFERENCE, question=QUESTION)
    assert (scored.score >= 0.5) is passes, scored


def test_a_short_reference_must_appear_as_a_phrase():
    assert scorers.contains_reference("The answer is 1712.", "1712").score == 1.0
    assert scorers.contains_reference("The answer is 1713.", "1712").score == 0.0


def test_citation_supported_by_the_cited_source():
    scored = scorers.citation_check("Odalys Brenvik, a glassmaker, founded it in 1712 [2].", SOURCES, question=QUESTION)
    assert scored.score == 1.0, scored


def test_citation_of_the_wrong_source_fails():
    scored = scorers.citation_check("Odalys Brenvik, a glassmaker, founded it in 1712 [1].", SOURCES, question=QUESTION)
    assert scored.score == 0.0 and "[1] holds" in scored.rationale, scored


def test_citation_of_a_source_that_does_not_exist_fails():
    scored = scorers.citation_check("Odalys Brenvik founded it in 1712 [7].", SOURCES, question=QUESTION)
    assert scored.score == 0.0 and "[7] does not exist" in scored.rationale


def test_a_citation_that_only_repeats_the_question_fails():
    scored = scorers.citation_check("Who founded the town of Quenterby [2]?", SOURCES, question=QUESTION)
    assert scored.score == 0.0 and "beyond the question" in scored.rationale


def test_an_answer_citing_nothing_scores_zero_and_partial_support_is_a_share():
    assert scorers.citation_check("Odalys Brenvik founded it.", SOURCES).score == 0.0
    mixed = "Odalys Brenvik founded it in 1712 [2]. Its harbour is warm all year and never frozen [1]."
    assert scorers.citation_check(mixed, SOURCES, question=QUESTION).score == 0.5


@pytest.mark.parametrize(
    ("text", "score", "rationale"),
    [
        ('{"score": 4, "rationale": "mostly right"}', 4, "mostly right"),
        ('Here you go:\n```json\n{"score": 2, "rationale": "misses the year"}\n```', 2, "misses the year"),
        ('{"score": "5", "rationale": "same facts"}', 5, "same facts"),
        (
            '{"score": 3, "rationale": "cut off because the judge ran out of tok',
            3,
            "cut off because the judge ran out of tok",
        ),
        ("Score: 1. The answer contradicts the reference.", 1, None),
        ("5", 5, None),
    ],
)
def test_the_judge_parser_reads_scores_however_they_come(text, score, rationale):
    parsed = parse(text)
    assert parsed is not None and parsed.score == score
    if rationale is not None:
        assert parsed.rationale == rationale


@pytest.mark.parametrize(
    "text", ["", "I think the answer is good.", '{"score": 9, "rationale": "x"}', "alpha:judge:0 tok1 tok2", "12345"]
)
def test_the_judge_parser_refuses_answers_without_a_score(text):
    assert parse(text) is None


def test_judge_messages_carry_what_the_rubric_needs():
    item = Item(QUESTION, "Odalys Brenvik [2].", REFERENCE, SOURCES)
    correctness = messages(RUBRICS["correctness"], item)[1]["content"]
    grounded = messages(RUBRICS["groundedness"], item)[1]["content"]
    assert REFERENCE in correctness and SOURCES[1] not in correctness
    assert f"[2] {SOURCES[1]}" in grounded and REFERENCE not in grounded


def test_rubric_versions_are_fingerprinted():
    fingerprints = {r.fingerprint for r in RUBRICS.values()}
    assert len(fingerprints) == len(RUBRICS)
    assert RUBRICS["correctness"].key == "correctness@v1"


def test_question_and_sources_from_a_logged_rag_prompt():
    prompt = [
        {
            "role": "system",
            "content": "Answer from the numbered sources.\n\nSources:\n[1] " + SOURCES[0] + "\n[2] " + SOURCES[1],
        },
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
    ]
    assert question_of(prompt) == QUESTION
    assert sources_of(prompt) == SOURCES
    assert sources_of([{"role": "user", "content": QUESTION}]) == []


def test_embedding_similarity_with_the_retrievers_model():
    from llmops_feedback.evaluation.embeddings import Similarity
    from llmops_feedback.evaluation.service import score_deterministic

    rubric = RUBRICS["embedding_similarity"]
    similarity = Similarity()
    same = score_deterministic(rubric, Item(QUESTION, "The town was founded by Odalys Brenvik in 1712.", REFERENCE),
                               similarity=similarity)  # fmt: skip
    other = score_deterministic(
        rubric, Item(QUESTION, "Bananas are rich in potassium.", REFERENCE), similarity=similarity
    )
    assert same.ok and same.score >= rubric.pass_at > other.score, (same, other)
    without = score_deterministic(rubric, Item(QUESTION, "x", REFERENCE))
    assert not without.ok and without.score is None and "no embedding model" in without.rationale
