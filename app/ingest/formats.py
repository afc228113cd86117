"""Which arXiv/venue format a file holds, reading it safely, and streaming it as pages.

`detect_format(path)` sniffs the content (gzip is opened transparently; the file name is never
trusted) and answers one of FORMATS. `read_file(path)` yields `ParsedPage`s: JSON Lines files
stream in pages of at most `batch_size` records (papers plus record errors), so a 4 GB Kaggle
dump never sits in memory; XML documents and venue lists are parsed whole, one page each.
This module picks the parser; the parsers never import it back (their one hardened XML
entry point is `app.ingest.safe_xml.parse_xml`).

Error policy (the project's): a record-level problem becomes a `RecordError` (source, 1-based
line, record id when known, message) beside the valid records, which are kept. A document-level
problem (empty file, unknown format, truncated or non-well-formed XML, bytes that are not the
declared encoding, a DOCTYPE, a corrupt gzip stream) raises `DocumentError` naming the file and,
when known, the line; for XML nothing from the document is yielded. JSON Lines are streamed, so
a gzip stream that breaks off raises `DocumentError` after the pages before the break were
yielded; those pages hold only complete, valid lines.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

import orjson

from app.ingest import arxiv_api, jsonl, oai_pmh, rss, venues
from app.ingest.records import DocumentError, ParsedPage, RecordError

FORMATS = (
    "arxiv-api",
    "oai-pmh",
    "rss",
    "atom-feed",
    "listing-jsonl",
    "kaggle-jsonl",
    "venue-json",
)
_JSONL_FORMATS = ("listing-jsonl", "kaggle-jsonl")
_SNIFF_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
# The first element's name, after any declaration, comments, processing instructions, DOCTYPE.
_XML_ROOT = re.compile(r"<(?![?!])([A-Za-z_][\w.:-]*)")
_KAGGLE_KEYS = frozenset({"versions", "authors_parsed", "update_date", "submitter"})


# --- reading files ----------------------------------------------------------------------


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip whatever its name."""
    if _is_gzip(path):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole (decompressed) content; a corrupt gzip stream is a DocumentError."""
    p = Path(path)
    try:
        with _open_binary(p) as fh:
            return fh.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DocumentError(p.name, f"corrupt gzip stream ({exc})") from None


def _head(path: Path) -> bytes:
    try:
        with _open_binary(path) as fh:
            return fh.read(_SNIFF_BYTES)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DocumentError(path.name, f"corrupt gzip stream ({exc})") from None


def _sniff_feed(text: str) -> str | None:
    # API responses always declare OpenSearch; announcement feeds never do.
    if "opensearch" in text:
        return "arxiv-api"
    if "rss.arxiv.org" in text or "announce_type" in text:
        return "atom-feed"
    if "arxiv.org/api" in text:
        return "arxiv-api"
    return None


def _sniff_jsonl(head: bytes, name: str) -> str:
    lines = head.splitlines()
    if len(head) == _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut by the sniff window
    tried = 0
    for line in lines:
        if not line.strip():
            continue
        tried += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            if tried >= 5:
                break
            continue
        if isinstance(obj, dict):
            if "listing_date" in obj:
                return "listing-jsonl"
            if _KAGGLE_KEYS & obj.keys():
                return "kaggle-jsonl"
        raise DocumentError(name, "JSON Lines with neither arXiv listing nor Kaggle fields")
    raise DocumentError(name, "looks like JSON Lines but no line is valid JSON")


def detect_format(path: str | os.PathLike[str]) -> str:
    """One of FORMATS, from the content; DocumentError for empty or unknown files."""
    p = Path(path)
    head = _head(p)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text:
        raise DocumentError(p.name, "empty file")
    first = text[0]
    if first == "<":
        m = _XML_ROOT.search(text)
        root = m.group(1).rsplit(":", 1)[-1] if m else ""
        if root == "OAI-PMH":
            return "oai-pmh"
        if root == "rss":
            return "rss"
        if root == "feed":
            kind = _sniff_feed(text)
            if kind:
                return kind
            raise DocumentError(
                p.name, "Atom feed that is neither an arXiv API response nor an announcement feed"
            )
        raise DocumentError(p.name, f"unknown XML document (root element {root or '?'!r})")
    if first == "[":
        return "venue-json"
    if first == "{":
        return _sniff_jsonl(head, p.name)
    raise DocumentError(p.name, "unknown format: neither XML nor JSON")


def _stem(path: Path) -> str:
    """ "iclr2018.json.gz" → "iclr2018"."""
    return path.name.split(".", 1)[0]


def _jsonl_pages(path: Path, fmt: str, batch_size: int) -> Iterator[ParsedPage]:
    parse = jsonl.iter_listing if fmt == "listing-jsonl" else jsonl.iter_kaggle
    page = ParsedPage(start=0)
    done = 0
    size = 0
    try:
        with _open_binary(path) as lines:
            for item in parse(lines, path.name):
                if isinstance(item, RecordError):
                    page.errors.append(item)
                else:
                    page.papers.append(item)
                size += 1
                if size >= batch_size:
                    yield page
                    done += size
                    page = ParsedPage(start=done)
                    size = 0
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        where = f"after {done + size} records"
        raise DocumentError(path.name, f"corrupt gzip stream {where} ({exc})") from None
    if size or done == 0:
        yield page


def read_file(
    path: str | os.PathLike[str], *, batch_size: int = 2000, venue: str | None = None
) -> Iterator[ParsedPage]:
    """Parse any supported file into pages (see the module docstring for the policy)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    p = Path(path)
    fmt = detect_format(p)
    if fmt in _JSONL_FORMATS:
        yield from _jsonl_pages(p, fmt, batch_size)
        return
    data = read_bytes(p)
    if fmt == "venue-json":
        yield venues.parse_venue(data, venue or _stem(p), p.name)
    elif fmt == "arxiv-api":
        yield arxiv_api.parse_api_response(data, p.name)
    elif fmt == "oai-pmh":
        yield oai_pmh.parse_oai_pmh(data, p.name)
    else:
        yield rss.parse_feed(data, p.name)
