"""Conference paper lists (papercopilot/paperlists `*.json(.gz)`) → ParsedPage.venue_papers.

A file is one JSON array of objects with `id`, `title`, `status` (Poster/Oral/Reject/…, or
Long/Short/Findings for ACL), `track`, `author` (";"-separated), `abstract`, `site`,
`keywords` (";"-separated string or a list) and, for ICLR, `tldr`; other fields are ignored.
Titles keep their TeX (`$\\ell_1$-regression`); whitespace is collapsed and text accents decoded.
Each record's `line` is the line its object starts on, so errors point into the file.

Error policy: an element that is not an object or lacks an id or a title becomes a
RecordError (source, line, id when present) and the other papers are kept. A document that
is empty, not UTF-8, not well-formed JSON (a truncated file) or not an array raises
DocumentError naming the file and line, and yields nothing.
"""

from __future__ import annotations

import gzip
import json
import zlib

from app.ingest.records import DocumentError, ParsedPage, RecordError, VenuePaperRecord
from app.ingest.text import clean_optional, clean_text, strip_xml_illegal

_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


def _split(value: object) -> list[str]:
    """ ";"-separated string or list → cleaned, non-empty items."""
    if isinstance(value, list):
        items = [v for v in value if isinstance(v, str)]
    elif isinstance(value, str):
        items = value.split(";")
    else:
        return []
    return [c for item in items if (c := clean_text(item))]


def _record(obj: object, venue: str, source: str, line: int) -> VenuePaperRecord | RecordError:
    if not isinstance(obj, dict):
        return RecordError(source, line, None, "array element is not an object")
    raw_id = obj.get("id")
    paper_id = strip_xml_illegal(str(raw_id)).strip() if isinstance(raw_id, str | int) else ""
    if not paper_id:
        return RecordError(source, line, None, "paper has no id")
    title = clean_text(obj["title"]) if isinstance(obj.get("title"), str) else ""
    if not title:
        return RecordError(source, line, paper_id, "paper has no title")
    return VenuePaperRecord(
        venue=venue,
        venue_paper_id=paper_id,
        title=title,
        authors=_split(obj.get("author")),
        abstract=clean_optional(obj.get("abstract")),
        status=clean_optional(obj.get("status")),
        track=clean_optional(obj.get("track")),
        site=clean_optional(obj.get("site")),
        keywords=_split(obj.get("keywords")),
        tldr=clean_optional(obj.get("tldr")),
        line=line,
    )


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def parse_venue(data: bytes, venue: str, source: str) -> ParsedPage:
    """Parse one venue list (gzip accepted); see the module docstring for the policy."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DocumentError(source, f"corrupt gzip stream ({exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DocumentError(source, f"bytes are not UTF-8 ({exc.reason})", line=line) from None
    pos = _skip_ws(text, 0)
    if pos == len(text):
        raise DocumentError(source, "empty document")
    if text[pos] != "[":
        raise DocumentError(
            source, "expected a JSON array of papers", line=text.count("\n", 0, pos) + 1
        )
    page = ParsedPage()
    # Decode element by element (the stdlib decoder reports positions; orjson does not) so
    # every record knows its line.
    line, counted = 1, 0
    pos = _skip_ws(text, pos + 1)
    first = True
    try:
        while True:
            if pos >= len(text):
                raise json.JSONDecodeError("unterminated array", text, pos)
            if text[pos] == "]":
                break
            if not first:
                if text[pos] != ",":
                    raise json.JSONDecodeError("expected ',' or ']'", text, pos)
                pos = _skip_ws(text, pos + 1)
            first = False
            obj, end = _DECODER.raw_decode(text, pos)
            line += text.count("\n", counted, pos)
            counted = pos
            item = _record(obj, venue, source, line)
            if isinstance(item, RecordError):
                page.errors.append(item)
            else:
                page.venue_papers.append(item)
            pos = _skip_ws(text, end)
    except json.JSONDecodeError as exc:
        raise DocumentError(source, f"not well-formed JSON ({exc.msg})", line=exc.lineno) from None
    if _skip_ws(text, pos + 1) != len(text):
        raise DocumentError(source, "data after the array", line=text.count("\n", 0, pos) + 1)
    page.total = len(page.venue_papers) + len(page.errors)
    return page
