"""The common shapes every parser produces and the store consumes.

Parsers are pure: bytes or lines in, records and per-record errors out. A record that
cannot be used becomes a `RecordError` naming where it was; a document that cannot be
read at all (truncated XML, undecodable bytes) raises `DocumentError` and yields nothing.

Every parser builds these records, so their constructors are where the store's one text rule
is enforced: characters XML forbids (NUL among them) are removed from every string field
(`app.ingest.text.strip_xml_illegal`), the same for every source and both databases.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from app.ingest.text import strip_xml_illegal


def _clean_list(items: list[str]) -> list[str]:
    return [c for item in items if (c := strip_xml_illegal(item))]


def _clean_optional(value: str | None) -> str | None:
    return None if value is None else strip_xml_illegal(value) or None


class AnnounceKind(StrEnum):
    NEW = "new"
    CROSS = "cross"
    REPLACE = "replace"
    REPLACE_CROSS = "replace-cross"


@dataclass(slots=True, frozen=True)
class Version:
    number: int
    submitted_at: datetime | None = None  # timezone-aware UTC
    size: str | None = None  # as arXivRaw/Kaggle give it, e.g. "15kb"

    def __post_init__(self) -> None:
        if self.size is not None:
            object.__setattr__(self, "size", _clean_optional(self.size))


@dataclass(slots=True, frozen=True)
class Announcement:
    category: str  # canonical category id
    day: date
    kind: AnnounceKind
    position: int | None = None  # order within that day's list when the source has one


@dataclass(slots=True)
class PaperRecord:
    arxiv_id: str  # normalised, without version
    title: str
    abstract: str
    authors: list[str]
    primary_category: str  # canonical
    categories: list[str]  # canonical taxonomy ids, primary first, no duplicates
    version: int | None = None  # latest version this source knows; None when it does not say
    versions: list[Version] = field(default_factory=list)
    comments: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    license: str | None = None
    classes: list[str] = field(default_factory=list)  # ACM/MSC codes and other non-arXiv terms
    first_submitted_at: datetime | None = None  # v1
    last_updated_at: datetime | None = None  # the latest version's time
    announcements: list[Announcement] = field(default_factory=list)
    source: str = ""  # e.g. "arxiv-api", "oai:arXiv", "rss", "jsonl", "kaggle"
    line: int | None = None  # where the record started in its document (1-based)

    def __post_init__(self) -> None:
        # The one normalisation every source's records pass (see the module docstring).
        self.arxiv_id = strip_xml_illegal(self.arxiv_id)
        self.title = strip_xml_illegal(self.title)
        self.abstract = strip_xml_illegal(self.abstract)
        self.authors = _clean_list(self.authors)
        self.primary_category = strip_xml_illegal(self.primary_category)
        self.categories = _clean_list(self.categories)
        self.comments = _clean_optional(self.comments)
        self.journal_ref = _clean_optional(self.journal_ref)
        self.doi = _clean_optional(self.doi)
        self.license = _clean_optional(self.license)
        self.classes = _clean_list(self.classes)

    def content_hash(self) -> str:
        """Digest of the metadata a reader sees; equal digests mean a re-import is a no-op."""
        payload = "\x1e".join(
            (
                self.title,
                self.abstract,
                "\x1f".join(self.authors),
                self.primary_category,
                " ".join(self.categories),
                self.comments or "",
                self.journal_ref or "",
                self.doi or "",
                self.license or "",
                " ".join(self.classes),
            )
        )
        return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


@dataclass(slots=True)
class VenuePaperRecord:
    venue: str  # e.g. "iclr2018"
    venue_paper_id: str
    title: str
    authors: list[str]
    abstract: str | None = None
    status: str | None = None
    track: str | None = None
    site: str | None = None
    keywords: list[str] = field(default_factory=list)
    tldr: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        # The same rule as PaperRecord's.
        self.venue = strip_xml_illegal(self.venue)
        self.venue_paper_id = strip_xml_illegal(self.venue_paper_id)
        self.title = strip_xml_illegal(self.title)
        self.authors = _clean_list(self.authors)
        self.abstract = _clean_optional(self.abstract)
        self.status = _clean_optional(self.status)
        self.track = _clean_optional(self.track)
        self.site = _clean_optional(self.site)
        self.keywords = _clean_list(self.keywords)
        self.tldr = _clean_optional(self.tldr)


@dataclass(slots=True, frozen=True)
class RecordError:
    """One unusable record; the records around it are kept."""

    source: str  # file name or URL
    line: int | None
    record: str | None  # the record's id when it could be read
    message: str

    def __post_init__(self) -> None:
        # Errors are logged and stored with fetch runs: the same rule as the records.
        object.__setattr__(self, "message", strip_xml_illegal(self.message))
        if self.record is not None:
            object.__setattr__(self, "record", strip_xml_illegal(self.record))

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        rec = f" record {self.record}" if self.record else ""
        return f"{where}:{rec} {self.message}".replace(": ", ": ", 1)


class DocumentError(ValueError):
    """The whole document is unreadable; nothing from it may be stored."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


class UpstreamError(ValueError):
    """arXiv answered with an error document (the API's HTTP 400 feed, an OAI-PMH error)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


@dataclass(slots=True)
class ParsedPage:
    """One response or file chunk: usable records, the errors beside them, paging facts."""

    papers: list[PaperRecord] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    total: int | None = None  # opensearch:totalResults / completeListSize / feed item count
    start: int | None = None  # opensearch:startIndex / OAI cursor
    resumption_token: str | None = None  # OAI-PMH; None when the list is complete
    day: date | None = None  # RSS/Atom announcement feeds: the day announced
    feed_categories: list[str] = field(default_factory=list)  # RSS/Atom: the feed's categories
    venue_papers: list[VenuePaperRecord] = field(default_factory=list)  # venue lists only
