"""Versioned rubrics: what a scorer judges, and how. A published version never changes (stored scores were made
with it, and agreement with people is reported per version); a better rubric is a new version. Each version also
carries a fingerprint of its text, stored with every score, so an edit made without a new version is visible.
"""

import hashlib
from dataclasses import dataclass
from enum import Enum


class Needs(str, Enum):
    NOTHING = "nothing"
    REFERENCE = "reference"  # an expected answer: a correction given with a rating, or an eval set's
    SOURCES = "sources"  # the retrieved sources the answer was made from (RAG)


@dataclass(frozen=True)
class Rubric:
    name: str
    version: int
    kind: str  # judge | deterministic
    needs: Needs
    description: str
    instructions: str = ""  # a judge's: what a 1 and a 5 mean
    pass_at: float = 0.5  # a score in [0, 1] at or above this is a pass (a thumbs up, for agreement)

    @property
    def key(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def fingerprint(self) -> str:
        text = "\x1f".join((self.name, str(self.version), self.kind, self.needs.value, self.instructions))
        return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


_JUDGE_SCALE = (
    "Rate on a scale from 1 (worst) to 5 (best). Reply with JSON only, on one line: "
    '{"score": <1-5>, "rationale": "<one short sentence>"}'
)

RUBRICS: dict[str, Rubric] = {
    r.name: r
    for r in (
        Rubric(
            "correctness", 1, "judge", Needs.REFERENCE,
            "Does the answer state what the reference answer states?",
            "You grade an answer against a reference answer. 5: it states the same facts as the reference. "
            "3: partly the same, or vague. 1: it contradicts the reference or misses it. Wording does not matter. "
            + _JUDGE_SCALE,
        ),
        Rubric(
            "groundedness", 1, "judge", Needs.SOURCES,
            "Is everything the answer states supported by the retrieved sources?",
            "You check an answer against the numbered sources it was written from. 5: every statement is supported "
            "by the sources. 3: some statements are not in the sources. 1: the answer contradicts the sources or "
            "invents facts. " + _JUDGE_SCALE,
        ),
        Rubric(
            "helpfulness", 1, "judge", Needs.NOTHING,
            "Does the answer address the user's question usefully?",
            "You grade how helpful an assistant's answer is to the user's question. 5: it answers the question "
            "directly and correctly as far as you can tell. 3: partly useful. 1: off topic, evasive or empty. "
            + _JUDGE_SCALE,
        ),
        Rubric("exact_match", 1, "deterministic", Needs.REFERENCE, "The answer equals the reference (normalised)."),
        Rubric(
            "contains_reference", 1, "deterministic", Needs.REFERENCE,
            "The answer contains the reference (normalised), or for a long reference most of its content words.",
        ),
        Rubric(
            "embedding_similarity", 1, "deterministic", Needs.REFERENCE,
            "Cosine similarity of the answer's and the reference's MiniLM embeddings (clipped at 0).",
            pass_at=0.6,
        ),
        Rubric(
            "citation", 1, "deterministic", Needs.SOURCES,
            "Every [n] the answer cites exists and contains what the citing sentence states (content words).",
        ),
    )
}  # fmt: skip


def get(name: str) -> Rubric | None:
    return RUBRICS.get(name)
