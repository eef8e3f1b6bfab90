"""Looking for secrets where they must never be: logs, metrics, spans, HTTP answers, stored rows, files on disk.

A ``Secret`` is a value the platform must keep (an API key, a token, the key-hashing secret) and a name for it. What
a careless line of code would write of it is looked for (``forms``): the value, and its URL, hex and base64 encodings
(both alphabets, at each of the three alignments it can have inside a longer encoded string, such as a Basic
``user:password`` header), each as any run of ``FRAGMENT`` characters: a cut token is still a leak (a form with
other characters than tokens and these encodings have, such as a passphrase with spaces, is looked for whole). Only
a key's displayed prefix (``shown``) may appear on its own.

A ``Capture`` is one thing a test collected, with the names of the secrets it may hold (a key's creation answer holds
that key). ``scan`` gives a ``Finding`` per secret and capture, with the text around it and the secret masked, so a
failing test does not print the secret again.
"""

import base64
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx

FRAGMENT = 16  # characters: shorter runs of a random secret are not worth a failing test
# The characters every form of a generated secret is made of (URL-safe base64, hex, base64, %-escapes). Text is cut
# into runs of them, and every window of a run is looked up among the secrets' windows: one pass per capture.
_RUN = re.compile("[A-Za-z0-9_+/%=-]{" + str(FRAGMENT) + ",}")


@dataclass(frozen=True)
class Secret:
    name: str
    value: str
    shown: int = 0  # leading characters that may appear (a key's prefix, shown in lists)


@dataclass(frozen=True)
class Capture:
    kind: str  # log, metrics, span, http, stored, spool, redis, ...
    where: str
    text: str
    allowed: frozenset[str] = frozenset()  # names of the secrets this capture is meant to hold

    @classmethod
    def of_bytes(cls, kind: str, where: str, data: bytes, allowed: Iterable[str] = ()) -> "Capture":
        # Byte for byte: an ASCII secret matches in any file, whatever its encoding.
        return cls(kind, where, data.decode("latin-1"), frozenset(allowed))


@dataclass(frozen=True)
class Finding:
    secret: str
    form: str
    kind: str
    where: str
    context: str  # the text around it, the secret masked


def _base64_cores(raw: bytes) -> dict[str, str]:
    """What base64 of any string holding ``raw`` contains, for each alignment of ``raw`` in it: the quanta that hold
    only bytes of ``raw`` (the first one also holds the bytes before it unless aligned; the one after the last whole
    quantum, the bytes after it)."""
    cores = {}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        core = encoded[4 if offset else 0 : 4 * ((offset + len(raw)) // 3)]
        cores[f"base64@{offset}"] = core
        cores[f"base64url@{offset}"] = core.translate(str.maketrans("+/", "-_"))
    return cores


def forms(secret: Secret) -> dict[str, str]:
    """Each way the secret may be written, by name."""
    value = secret.value
    found = {"value": value, "url": quote(value, safe=""), "url+": quote_plus(value), "hex": value.encode().hex()}
    found.update(_base64_cores(value.encode()))
    unique: dict[str, str] = {}
    for name, form in found.items():  # URL-encoding leaves a URL-safe token as it is: one form, named "value"
        if len(form) >= FRAGMENT and form not in unique.values():
            unique[name] = form
    return unique


class Scanner:
    """The secrets' windows, indexed once; ``scan`` cuts each capture into runs of token characters and looks every
    window of every run up: one pass over each capture, however many secrets."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.secrets = list(secrets)
        self._windows: dict[str, tuple[str, str]] = {}  # window -> (secret, form)
        self._odd: list[tuple[str, str, str]] = []  # forms with characters outside _RUN: searched whole
        for secret in self.secrets:
            for form, text in forms(secret).items():
                if not _RUN.fullmatch(text):
                    self._odd.append((secret.name, form, text))
                    continue
                start = max(0, secret.shown - FRAGMENT + 1) if form == "value" else 0
                for i in range(start, len(text) - FRAGMENT + 1):
                    self._windows.setdefault(text[i : i + FRAGMENT], (secret.name, form))

    def scan(self, captures: Iterable[Capture]) -> list[Finding]:
        findings: list[Finding] = []
        for capture in captures:
            seen: set[str] = set(capture.allowed)
            for match in _RUN.finditer(capture.text):
                run = match.group()
                for i in range(len(run) - FRAGMENT + 1):
                    hit = self._windows.get(run[i : i + FRAGMENT])
                    if hit is not None and hit[0] not in seen:
                        seen.add(hit[0])
                        findings.append(_finding(capture, *hit, match.start(), match.end()))
            for name, form, text in self._odd:
                if name not in seen and (at := capture.text.find(text)) >= 0:
                    seen.add(name)
                    findings.append(_finding(capture, name, form, at, at + len(text)))
        return findings


def scan(captures: Iterable[Capture], secrets: Iterable[Secret]) -> list[Finding]:
    return Scanner(secrets).scan(captures)


def _finding(capture: Capture, secret: str, form: str, start: int, end: int) -> Finding:
    text = capture.text
    context = f"{text[max(0, start - 80) : start]}<<{secret}>>{text[end : end + 80]}"
    return Finding(secret, form, capture.kind, capture.where, context)


# --- collecting captures ---


def file_captures(root: Path, kind_of=lambda path: "file", *, skip: Iterable[Path] = ()) -> list[Capture]:
    """Every file under ``root`` but those under ``skip``; SQLite databases as their rows (``sqlite_rows``)."""
    captures, skip = [], [Path(s) for s in skip]
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        if any(path.is_relative_to(s) for s in skip):
            continue
        if path.suffix == ".db":
            captures.append(Capture("stored", str(path), sqlite_rows(path)))
        elif not path.name.endswith(("-wal", "-shm", "-journal")):  # SQLite's own: read through the database
            captures.append(Capture.of_bytes(kind_of(path), str(path), path.read_bytes()))
    return captures


def sqlite_rows(path: Path) -> str:
    """Every row of every table, one line each (what the database holds now, its WAL included)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(f"{table}: {row!r}" for table in tables for row in db.execute(f'SELECT * FROM "{table}"'))


def redis_capture(url: str, prefix: str) -> Capture:
    """Every key under ``prefix`` and its value, whatever its type."""
    import redis

    client = redis.Redis.from_url(url)
    read = {
        b"string": client.get,
        b"hash": client.hgetall,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": client.smembers,
        b"zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        b"stream": lambda key: client.xrange(key),
    }
    try:
        lines = [
            f"{key!r}: {read.get(client.type(key), lambda _: None)(key)!r}" for key in client.scan_iter(f"{prefix}*")
        ]
    finally:
        client.close()
    return Capture("redis", f"redis keys {prefix}*", "\n".join(lines))


class HttpRecorder:
    """Keeps every answer a test's clients receive (status, headers, body) as a capture: ``client()`` makes clients
    that report to it; ``allow`` marks the last answer as meant to hold a secret (a key's creation)."""

    def __init__(self) -> None:
        self.captures: list[Capture] = []

    def record(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        headers = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
        where = f"{request.method} {request.url.scheme}://{request.url.netloc.decode()}{request.url.path}"
        where += f" -> {response.status_code}"
        self.captures.append(Capture("http", where, f"{headers}\n\n{response.text}"))

    def allow(self, *secrets: str) -> None:
        last = self.captures[-1]
        self.captures[-1] = Capture(last.kind, last.where, last.text, last.allowed | frozenset(secrets))

    def client(self, base_url: str = "", *, token: str | None = None, **kwargs) -> httpx.Client:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=base_url, headers=headers, event_hooks={"response": [self.record]}, **kwargs)
