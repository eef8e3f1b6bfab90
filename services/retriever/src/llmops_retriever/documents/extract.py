"""Plain text out of uploaded files: .txt, .md, .html, .pdf.

The type comes from the file name's extension, or else from the Content-Type; anything else is refused (415).
Text is normalised the same way for every type: runs of spaces and tabs become one space, and more than one
blank line becomes one, so chunk boundaries depend on words, not on layout.
"""

import io
import re
from html.parser import HTMLParser
from pathlib import PurePosixPath

from llmops_common.errors import APIError

_BY_EXTENSION = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
_BY_MEDIA_TYPE = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/pdf": "pdf",
}
SUPPORTED = ", ".join(sorted(_BY_EXTENSION))


def file_kind(filename: str, content_type: str | None) -> str:
    kind = _BY_EXTENSION.get(PurePosixPath(filename).suffix.lower())
    if kind is None and content_type:
        kind = _BY_MEDIA_TYPE.get(content_type.split(";")[0].strip().lower())
    if kind is None:
        raise APIError(415, f"unsupported file type {filename!r}; supported: {SUPPORTED}", code="unsupported_file_type")
    return kind


def normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t\f\v\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise APIError(415, "text files must be UTF-8", code="unsupported_encoding") from None


class _HtmlText(HTMLParser):
    """The visible text of an HTML page; block elements start new lines."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg"})
    _BLOCKS = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "section",
            "article",
            "header",
            "footer",
            "pre",
            "blockquote",
            "table",
            "ul",
            "ol",
            "dt",
            "dd",
            "title",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html(data: bytes) -> str:
    parser = _HtmlText()
    parser.feed(_decode(data))
    parser.close()
    return "".join(parser.parts)


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
        pages = [] if encrypted else [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # noqa: BLE001 - a parser fed untrusted bytes fails in many ways; all are bad input
        raise APIError(422, f"the PDF could not be read: {exc!r}"[:300], code="unreadable_file") from None
    if encrypted:
        raise APIError(422, "encrypted PDFs are not supported", code="unreadable_file")
    return "\n\n".join(pages)


def extract_text(data: bytes, kind: str) -> str:
    """Normalised text; CPU-bound for PDFs, so callers run it in a thread."""
    match kind:
        case "html":
            text = _html(data)
        case "pdf":
            text = _pdf(data)
        case _:
            text = _decode(data)
    return normalise(text)
