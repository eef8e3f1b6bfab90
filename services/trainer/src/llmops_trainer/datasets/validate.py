"""Chat-format JSONL datasets: validated line by line, scrubbed, deduplicated, hashed, split.

A line is the feedback export's SFT line (``llmops_common.contracts.datasets.SFTLine``):
``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``. Training adds its rules: an
optional system message first, at least one user message, and an assistant message last (the answer the model
learns; earlier turns are its prompt), no blank text. Other keys (``metadata``, ``name``, ...) are ignored.

The canonical form of a dataset is its scrubbed examples, deduplicated and sorted, one compact JSON object per
line with sorted keys. Its sha256 therefore names the *set* of examples: reordering or repeating lines of a file
gives the same hash, and the train/eval split and training order depend only on that set and the job's seed.
"""

import hashlib
import random
import re
from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

from llmops_common.contracts.datasets import ROLES, SFTLine

MAX_REPORTED_ERRORS = 10

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?!\w)")
# Phone numbers: international (+CC ...), grouped (555-123-4567, 06 12 34 56 78, (555) 123 4567) or 10-15 bare
# digits. Candidates are then checked for 7 to 15 digits and for not being an ISO date.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,5}(?![\w-])"
    r"|(?<![\w+])\+\d{7,15}(?!\w)|(?<![\w+.])\d{10,15}(?![\w.])"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ADDRESS_LIKE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")  # an IPv4 address, not a phone number


class DatasetError(ValueError):
    """The dataset cannot be used; ``errors`` names the offending lines (1-based)."""

    def __init__(self, errors: list[tuple[int | None, str]], *, total_errors: int | None = None) -> None:
        self.errors = errors
        self.total_errors = total_errors or len(errors)
        parts = [f"line {line}: {message}" if line else message for line, message in errors]
        more = self.total_errors - len(errors)
        super().__init__("; ".join(parts) + (f"; and {more} more bad lines" if more > 0 else ""))


@dataclass
class PreparedDataset:
    examples: list[list[dict]]  # canonical order
    canonical: bytes
    sha256: str
    lines: int  # non-blank lines read
    duplicates: int  # examples dropped as repeats (after scrubbing)
    scrubbed: int  # examples in which an e-mail address or phone number was replaced
    invalid: int = 0  # lines skipped as invalid (lenient mode only)
    first_errors: list[str] = field(default_factory=list)

    def info(self) -> dict:
        return {
            "sha256": self.sha256,
            "lines": self.lines,
            "examples": len(self.examples),
            "duplicates": self.duplicates,
            "scrubbed": self.scrubbed,
            "invalid": self.invalid,
        }


def _phone(match: re.Match) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if not 7 <= digits <= 15 or _ISO_DATE.fullmatch(text) or _ADDRESS_LIKE.fullmatch(text):
        return text
    return "[PHONE]"


def scrub(text: str) -> str:
    """E-mail addresses become ``[EMAIL]``, phone numbers ``[PHONE]``. Basic, pattern-based: it lowers the chance
    that a model memorises contact details from user traffic; it is not a PII guarantee."""
    return _PHONE.sub(_phone, _EMAIL.sub("[EMAIL]", text))


def _shape_error(error: dict) -> str:
    """A pydantic error on an SFT line's ``messages``, said the way a person fixing the file needs it."""
    where = error["loc"][1:]
    if not where:
        return "'messages' must be a non-empty list"
    name = f"messages[{where[0]}]"
    if len(where) == 1:
        return f"{name} must be an object"
    if where[1] == "role":
        got = None if error["type"] == "missing" else error.get("input")
        return f"{name}.role must be one of {', '.join(ROLES)} (got {got!r})"[:300]
    return f"{name}.content must be a non-empty string"


def check_example(document: object) -> list[dict]:
    """The example's messages (role and content only), or ValueError/TypeError saying what is wrong with it."""
    if not isinstance(document, dict):
        raise TypeError("expected a JSON object with a 'messages' list")
    try:
        line = SFTLine.model_validate({"messages": document.get("messages")})  # metadata is not the trainer's
    except ValidationError as exc:
        raise ValueError(_shape_error(exc.errors()[0])) from None
    clean = [message.model_dump() for message in line.messages]
    for i, message in enumerate(clean):
        if not message["content"].strip():
            raise ValueError(f"messages[{i}].content must be a non-empty string")
        if "\x00" in message["content"]:
            raise ValueError(f"messages[{i}].content contains a NUL character")
        if message["role"] == "system" and i != 0:
            raise ValueError(f"messages[{i}]: a system message may only come first")
    if clean[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's answer to learn")
    if not any(m["role"] == "user" for m in clean[:-1]):
        raise ValueError("an example needs a user message before the assistant's answer")
    return clean


def prepare(data: bytes, *, max_examples: int, strict: bool = True) -> PreparedDataset:
    """Validates, scrubs, deduplicates and hashes JSONL ``data``. ``strict``: any bad line fails the whole dataset
    (a file someone can fix); otherwise bad lines are skipped and counted (an export nobody can edit)."""
    errors: list[tuple[int, str]] = []
    total_errors = lines = scrubbed = 0
    seen: dict[bytes, list[dict]] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        lines += 1
        try:
            try:
                document = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"invalid JSON ({exc})") from None
            messages = check_example(document)
        except (ValueError, TypeError) as exc:
            total_errors += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append((number, str(exc)))
            continue
        cleaned = [{"role": m["role"], "content": scrub(m["content"])} for m in messages]
        scrubbed += cleaned != messages
        key = orjson.dumps({"messages": cleaned}, option=orjson.OPT_SORT_KEYS)
        seen.setdefault(key, cleaned)
        if len(seen) > max_examples:
            raise DatasetError([(number, f"more than {max_examples} examples (TRAINER_MAX_EXAMPLES)")])
    if errors and strict:
        raise DatasetError(errors, total_errors=total_errors)
    if not seen:
        raise DatasetError(errors or [(None, "the dataset has no examples")], total_errors=total_errors)
    keys = sorted(seen)
    canonical = b"".join(key + b"\n" for key in keys)
    return PreparedDataset(
        examples=[seen[key] for key in keys],
        canonical=canonical,
        sha256=hashlib.sha256(canonical).hexdigest(),
        lines=lines,
        duplicates=lines - total_errors - len(keys),
        scrubbed=scrubbed,
        invalid=total_errors,
        first_errors=[f"line {line}: {message}" for line, message in errors],
    )


def load_canonical(content: bytes) -> list[list[dict]]:
    """The examples of a stored canonical dataset (already validated)."""
    return [orjson.loads(line)["messages"] for line in content.splitlines() if line]


def split(examples: list, *, eval_fraction: float, seed: int) -> tuple[list, list]:
    """A seeded shuffle, then the first ``eval_fraction`` (at least one example when there are two or more and the
    fraction is not 0) for evaluation, the rest for training."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = 0
    if eval_fraction > 0 and len(examples) >= 2:
        n_eval = min(len(examples) - 1, max(1, round(len(examples) * eval_fraction)))
    shuffled = [examples[i] for i in order]
    return shuffled[n_eval:], shuffled[:n_eval]
