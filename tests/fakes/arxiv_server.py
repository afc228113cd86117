"""A fake arXiv on 127.0.0.1 speaking the real wire formats, with fault injection.

    with FakeArxiv() as fake:
        fake.add_papers([paper_from_listing(row) for row in rows])  # model + today's feeds
        fake.inject(status(503, retry_after=1), truncate(path="/api"))
        settings = fake.settings(arxiv_min_interval=0)  # arXiv URLs point here
        ...
        fake.requests  # every request: monotonic start/finish, path, query, status, fault

Routes (a real HTTP/1.1 server in a background thread, keep-alive, port 0):
* `/rss/<cats>`, `/atom/<cats>` — announcement feeds (RSS 2.0 / Atom as in arXiv's
  rss_specifications.md and atom_specifications.md), categories joined with "+"; an archive
  ("cs") stands for all of its categories. Items come from `feeds[category]`, a list of
  (arxiv_id, announce_type), deduplicated across the requested categories; the day announced
  is `feed_day` (midnight US-Eastern, as arXiv dates them).
* `/api/query` — export.arxiv.org Atom + OpenSearch totals, honouring `id_list` (a `vN`
  selects that version; unknown ids are left out; a malformed id is the HTTP 400 error feed),
  `search_query` (`cat:<c>` or anything else for all), `start`, `max_results` (default 10).
* `/oai` — OAI-PMH ListRecords in arXivRaw: `metadataPrefix`, `set` (arXiv's hierarchical
  specs: "cs", "cs:cs:AI", "physics:hep-th"), `from`/`until` on the datestamp, pages of
  `oai_page_size` with `resumptionToken` (+ completeListSize, cursor; an empty token on the last
  page, none when one page holds everything); errors `noRecordsMatch`, `badResumptionToken`,
  `badArgument`, `cannotDisseminateFormat`, `badVerb`.
* `/pdf/<id>` — a paper's PDF from `pdfs` (keyed by id with or without `vN`; a versioned
  request falls back to the unversioned key), `application/pdf`; else 404. `pdf_url` is the
  base for `thumbnail_pdf_url`.

Faults (`inject(...)`) form a queue; each request takes the first fault whose `path` prefix
matches (None: any path), and a fault is used `times` times: `status(code, retry_after=)`
(also redirects: `status(301, headers={"Location": …})`), `delay(seconds)`, `truncate()` (the
full Content-Length, half the body, then close), `malformed()` (XML that is not well-formed),
`repeat_page()` (OAI: the previous page again, same token), `empty()` (an empty feed / empty
API result / noRecordsMatch). `latency` delays every response.

Each request's `finished` time is taken just *before* the response's first byte is written,
so by causality a request that started after a client saw the previous response has
`started > previous.finished`: overlap in the log is real concurrency, never an artefact.
The renderers (`render_rss`, `render_atom`, `render_api`, `render_oai`, `render_oai_error`)
work without a server, e.g. for parser tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.settings import Settings
from app.taxonomy import get_taxonomy

EASTERN = ZoneInfo("America/New_York")
CC_BY = "http://creativecommons.org/licenses/by/4.0/"
OAI_BASE = "https://oaipmh.arxiv.org/oai"
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")


# --- the model ---------------------------------------------------------------------------


@dataclass
class FakePaper:
    arxiv_id: str  # without version
    title: str
    abstract: str
    authors: list[str]
    categories: list[str]  # primary first
    versions: list[datetime] = field(default_factory=list)  # submission time of v1, v2, …
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    license: str | None = CC_BY
    datestamp: date | None = None  # OAI datestamp (last change); default: the last version's
    submitter: str | None = None
    deleted: bool = False  # OAI: reported with <header status="deleted">

    def __post_init__(self) -> None:
        if not self.versions:
            self.versions = [datetime(2024, 1, 2, 12, 0, tzinfo=UTC)]

    @property
    def version(self) -> int:
        return len(self.versions)

    @property
    def primary(self) -> str:
        return self.categories[0]

    @property
    def oai_datestamp(self) -> date:
        return self.datestamp or self.versions[-1].date()

    def set_specs(self) -> set[str]:
        """Every OAI set this paper is in, at each level: "cs", "cs:cs", "cs:cs:AI"."""
        specs: set[str] = set()
        for cat in self.categories:
            group, archive, sub = _set_parts(cat)
            specs.update({group, f"{group}:{archive}"})
            if sub:
                specs.add(f"{group}:{archive}:{sub}")
        return specs

    def header_sets(self) -> list[str]:
        """The coarse specs arXiv puts in a record header: "cs", "physics:hep-th"."""
        out: dict[str, None] = {}
        for cat in self.categories:
            group, archive, _ = _set_parts(cat)
            out[group if group == archive else f"{group}:{archive}"] = None
        return list(out)


def _set_parts(cat: str) -> tuple[str, str, str | None]:
    archive, _, sub = cat.partition(".")
    known = get_taxonomy().category(cat)
    group = known.group.removeprefix("grp_") if known else archive
    return group, (known.archive if known else archive), sub or None


def _id_month(arxiv_id: str) -> date | None:
    digits = re.search(r"(\d{2})(\d{2})[.\d]", arxiv_id.split("/")[-1] + ".")
    if digits is None:
        return None
    yy, mm = int(digits.group(1)), int(digits.group(2))
    if not 1 <= mm <= 12:
        return None
    return date(2000 + yy if yy < 91 else 1900 + yy, mm, 1)


def paper_from_listing(row: Mapping[str, Any], *, versions: int | None = None) -> FakePaper:
    """A FakePaper from a listing-JSONL row (id, listing_date, title, authors, categories,
    comment, abstract). Submission times are made up but consistent: the last version the day
    before `listing_date`, v1 in the id's month when that is much earlier (a replacement)."""
    listed = date.fromisoformat(str(row["listing_date"])) if row.get("listing_date") else None
    last = datetime.combine((listed or date(2024, 1, 3)) - timedelta(days=1), dtime(18), UTC)
    first_month = _id_month(str(row["id"]))
    stamps = [last]
    if versions is None:
        versions = 2 if first_month and (last.date() - first_month).days > 62 else 1
    if versions > 1:
        first = datetime.combine(first_month or last.date() - timedelta(days=90), dtime(12), UTC)
        step = (last - first) / (versions - 1)
        stamps = [first + step * i for i in range(versions - 1)] + [last]
    authors = row.get("authors") or []
    if isinstance(authors, str):
        authors = [a.strip() for a in authors.split(",") if a.strip()]
    return FakePaper(
        arxiv_id=str(row["id"]),
        title=str(row["title"]),
        abstract=str(row.get("abstract") or ""),
        authors=list(authors),
        categories=list(row.get("categories") or []),
        versions=stamps,
        comment=row.get("comment") or None,
        datestamp=listed,
    )


def load_listing(path: str | Path, limit: int | None = None) -> list[FakePaper]:
    """FakePapers from a listing JSONL file (gzip or plain), e.g. shared/data/arxiv/papers_*."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out: list[FakePaper] = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(out) >= limit:
                break
            if line.strip():
                out.append(paper_from_listing(json.loads(line)))
    return out


def announce_type(paper: FakePaper, category: str) -> str:
    """How `paper` shows up in `category`'s daily list."""
    base = "replace" if paper.version > 1 else "new"
    if category == paper.primary:
        return base
    return "replace-cross" if base == "replace" else "cross"


# --- faults ------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # status | delay | truncate | malformed | repeat_page | empty
    path: str | None = None  # applies to requests whose path starts with this; None: any
    times: int = 1
    code: int = 503
    retry_after: float | datetime | str | None = None
    seconds: float = 0.0
    day: date | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


def status(
    code: int,
    *,
    retry_after: float | datetime | str | None = None,
    headers: Mapping[str, str] | None = None,
    path: str | None = None,
    times: int = 1,
) -> Fault:
    """Answer `code` (with `Retry-After`: seconds, an aware datetime → HTTP-date, or raw),
    plus any `headers` (e.g. `status(301, headers={"Location": "/oai"})` for a redirect)."""
    return Fault(
        "status", path, times, code=code, retry_after=retry_after, headers=dict(headers or {})
    )


def delay(seconds: float, *, path: str | None = None, times: int = 1) -> Fault:
    """Wait `seconds` before answering normally (a client with a shorter timeout gives up)."""
    return Fault("delay", path, times, seconds=seconds)


def truncate(*, path: str | None = None, times: int = 1) -> Fault:
    """Send the full Content-Length, then half the body, then close the connection."""
    return Fault("truncate", path, times)


def malformed(*, path: str | None = None, times: int = 1) -> Fault:
    """Answer 200 with XML that is not well-formed."""
    return Fault("malformed", path, times)


def repeat_page(*, path: str | None = "/oai", times: int = 1) -> Fault:
    """OAI-PMH: serve the previous ListRecords page again, token and all."""
    return Fault("repeat_page", path, times)


def empty(*, path: str | None = None, times: int = 1, day: date | None = None) -> Fault:
    """An empty answer: a feed without items (a weekend's, dated `day`), an API result with
    no entries, OAI noRecordsMatch."""
    return Fault("empty", path, times, day=day)


@dataclass
class Request:
    started: float  # time.monotonic() once the request line and headers were read
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    finished: float | None = None  # just before the first response byte (see module doc)
    status: int | None = None
    fault: str | None = None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


# --- renderers ---------------------------------------------------------------------------


def _x(value: object) -> str:
    return escape(str(value))


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment, usegmt=moment.utcoffset() == timedelta(0))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _midnight_eastern(day: date) -> datetime:
    return datetime.combine(day, dtime(0), EASTERN)


def render_rss(
    categories: Sequence[str], items: Sequence[tuple[FakePaper, str]], day: date
) -> bytes:
    """An rss.arxiv.org RSS 2.0 feed; `items` are (paper, announce_type) in feed order."""
    cats = list(categories)
    link = f"http://rss.arxiv.org/rss/{'+'.join(cats)}"
    published = _midnight_eastern(day)
    built = published.astimezone(UTC) + timedelta(seconds=9)
    out = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" version="2.0">',
        "  <channel>",
        f"    <title>{_x(', '.join(cats))} updates on arXiv.org</title>",
        f"    <link>{_x(link)}</link>",
        f"    <description>{_x(', '.join(cats))} updates on the arXiv.org e-print archive."
        "</description>",
        f'    <atom:link href={quoteattr(link.replace("http:", "https:"))} rel="self" '
        'type="application/rss+xml"/>',
        "    <docs>http://www.rssboard.org/rss-specification</docs>",
        "    <language>en-us</language>",
        f"    <lastBuildDate>{_rfc2822(built)}</lastBuildDate>",
        "    <managingEditor>rss-help@arxiv.org</managingEditor>",
        f"    <pubDate>{_rfc2822(published)}</pubDate>",
        "    <skipDays>",
        "      <day>Saturday</day>",
        "      <day>Sunday</day>",
        "    </skipDays>",
    ]
    for paper, kind in items:
        vid = f"{paper.arxiv_id}v{paper.version}"
        out += [
            "    <item>",
            f"      <title>{_x(paper.title)}</title>",
            f"      <link>https://arxiv.org/abs/{_x(paper.arxiv_id)}</link>",
            f"      <description>arXiv:{_x(vid)} Announce Type: {_x(kind)} \n"
            f"Abstract: {_x(paper.abstract)}</description>",
            f'      <guid isPermaLink="false">oai:arXiv.org:{_x(vid)}</guid>',
            *(f"      <category>{_x(c)}</category>" for c in paper.categories),
            f"      <pubDate>{_rfc2822(published)}</pubDate>",
            f"      <arxiv:announce_type>{_x(kind)}</arxiv:announce_type>",
        ]
        if paper.license:
            out.append(f"      <dc:rights>{_x(paper.license)}</dc:rights>")
        if paper.journal_ref:
            out.append(
                f"      <arxiv:journal_reference>{_x(paper.journal_ref)}</arxiv:journal_reference>"
            )
        if paper.doi:
            out.append(f"      <arxiv:DOI>{_x(paper.doi)}</arxiv:DOI>")
        out += [f"      <dc:creator>{_x(', '.join(paper.authors))}</dc:creator>", "    </item>"]
    out += ["  </channel>", "</rss>", ""]
    return "\n".join(out).encode()


def render_atom(
    categories: Sequence[str], items: Sequence[tuple[FakePaper, str]], day: date
) -> bytes:
    """An rss.arxiv.org Atom feed; `items` are (paper, announce_type) in feed order."""
    cats = list(categories)
    link = f"http://rss.arxiv.org/atom/{'+'.join(cats)}"
    published = _midnight_eastern(day)
    updated = published.astimezone(UTC) + timedelta(seconds=30)
    out = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">',
        f"  <id>{_x(link)}</id>",
        f"  <title>{_x(', '.join(cats))} updates on arXiv.org</title>",
        f"  <updated>{updated.isoformat()}</updated>",
        f'  <link href={quoteattr(link)} rel="self" type="application/atom+xml"/>',
        f"  <subtitle>{_x(', '.join(cats))} updates on the arXiv.org e-print archive.</subtitle>",
    ]
    for paper, kind in items:
        vid = f"{paper.arxiv_id}v{paper.version}"
        out += [
            "  <entry>",
            f"    <id>oai:arXiv.org:{_x(vid)}</id>",
            f"    <title>{_x(paper.title)}</title>",
            f"    <updated>{updated.isoformat()}</updated>",
            f"    <link href={quoteattr('https://arxiv.org/abs/' + paper.arxiv_id)} "
            'rel="alternate" type="text/html"/>',
            f"    <summary>arXiv:{_x(vid)} Announce Type: {_x(kind)} \n"
            f"Abstract: {_x(paper.abstract)}</summary>",
            *(f"    <category term={quoteattr(c)}/>" for c in paper.categories),
            f"    <published>{published.isoformat()}</published>",
            f"    <arxiv:announce_type>{_x(kind)}</arxiv:announce_type>",
        ]
        if paper.license:
            out.append(f"    <dc:rights>{_x(paper.license)}</dc:rights>")
        if paper.journal_ref:
            out.append(
                f"    <arxiv:journal_reference>{_x(paper.journal_ref)}</arxiv:journal_reference>"
            )
        if paper.doi:
            out.append(f"    <arxiv:DOI>{_x(paper.doi)}</arxiv:DOI>")
        out += [f"    <dc:creator>{_x(', '.join(paper.authors))}</dc:creator>", "  </entry>"]
    out += ["</feed>", ""]
    return "\n".join(out).encode()


_API_HEAD = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
    'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">'
)


def render_api(
    entries: Sequence[FakePaper | tuple[FakePaper, int | None]],
    *,
    total: int | None = None,
    start: int = 0,
    items_per_page: int | None = None,
    query: str = "",
    now: datetime | None = None,
) -> bytes:
    """An export.arxiv.org `/api/query` response. An entry may be (paper, version) to show
    that version (None: the latest)."""
    now = now or datetime.now(UTC)
    pairs = [e if isinstance(e, tuple) else (e, None) for e in entries]
    out = [
        _API_HEAD,
        "  <id>https://arxiv.org/api/fake</id>",
        f"  <title>arXiv Query: {_x(query)}</title>",
        f"  <updated>{_iso(now)}</updated>",
        f"  <link href={quoteattr('https://arxiv.org/api/query?' + query)} "
        'type="application/atom+xml"/>',
        f"  <opensearch:itemsPerPage>{items_per_page or len(pairs)}</opensearch:itemsPerPage>",
        f"  <opensearch:totalResults>{len(pairs) if total is None else total}"
        "</opensearch:totalResults>",
        f"  <opensearch:startIndex>{start}</opensearch:startIndex>",
    ]
    for paper, version in pairs:
        n = version or paper.version
        vid = f"{paper.arxiv_id}v{n}"
        out += [
            "  <entry>",
            f"    <id>http://arxiv.org/abs/{_x(vid)}</id>",
            f"    <title>{_x(paper.title)}</title>",
            f"    <updated>{_iso(paper.versions[n - 1])}</updated>",
            f'    <link href={quoteattr("https://arxiv.org/abs/" + vid)} rel="alternate" '
            'type="text/html"/>',
            f'    <link href={quoteattr("https://arxiv.org/pdf/" + vid)} rel="related" '
            'type="application/pdf" title="pdf"/>',
            f"    <summary>{_x(paper.abstract)}</summary>",
            *(
                f'    <category term={quoteattr(c)} scheme="http://arxiv.org/schemas/atom"/>'
                for c in paper.categories
            ),
            f"    <published>{_iso(paper.versions[0])}</published>",
        ]
        if paper.comment:
            out.append(f"    <arxiv:comment>{_x(paper.comment)}</arxiv:comment>")
        if paper.journal_ref:
            out.append(f"    <arxiv:journal_ref>{_x(paper.journal_ref)}</arxiv:journal_ref>")
        if paper.doi:
            out.append(f"    <arxiv:doi>{_x(paper.doi)}</arxiv:doi>")
        out.append(f"    <arxiv:primary_category term={quoteattr(paper.primary)}/>")
        out += [f"    <author>\n      <name>{_x(a)}</name>\n    </author>" for a in paper.authors]
        out.append("  </entry>")
    out += ["</feed>", ""]
    return "\n".join(out).encode()


def render_api_error(code: str, message: str, *, now: datetime | None = None) -> bytes:
    """The API's HTTP 400 body: a feed whose single entry describes the error."""
    stamp = _iso(now or datetime.now(UTC))
    href = f"https://arxiv.org/api/errors#{code}"
    return (
        f"{_API_HEAD}\n  <id>https://arxiv.org/</id>\n  <title>arXiv Search Results</title>\n"
        f"  <updated>{stamp}</updated>\n"
        "  <opensearch:itemsPerPage>1</opensearch:itemsPerPage>\n"
        "  <opensearch:totalResults>1</opensearch:totalResults>\n"
        "  <opensearch:startIndex>0</opensearch:startIndex>\n"
        f"  <entry>\n    <id>{_x(href)}</id>\n    <title>Error</title>\n"
        f"    <updated>{stamp}</updated>\n"
        f'    <link href={quoteattr(href)} rel="alternate" type="text/html"/>\n'
        f"    <summary>{_x(message)}</summary>\n"
        "    <author>\n      <name>arXiv api core</name>\n    </author>\n  </entry>\n</feed>\n"
    ).encode()


_OAI_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/ '
    'http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">'
)


def _oai_request(request: Mapping[str, str], now: datetime) -> str:
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in request.items())
    return f"<responseDate>{_iso(now)}</responseDate>\n<request{attrs}>{OAI_BASE}</request>"


def _raw_record(paper: FakePaper) -> str:
    header_sets = "".join(f"\n <setSpec>{_x(s)}</setSpec>" for s in paper.header_sets())
    deleted = ' status="deleted"' if paper.deleted else ""
    header = (
        f"<header{deleted}>\n <identifier>oai:arXiv.org:{_x(paper.arxiv_id)}</identifier>\n"
        f" <datestamp>{paper.oai_datestamp.isoformat()}</datestamp>{header_sets}\n</header>"
    )
    if paper.deleted:
        return f"<record>\n{header}\n</record>"
    parts = [f"<id>{_x(paper.arxiv_id)}</id>"]
    if paper.submitter or paper.authors:
        parts.append(f"<submitter>{_x(paper.submitter or paper.authors[0])}</submitter>")
    for n, stamp in enumerate(paper.versions, 1):
        parts.append(
            f'<version version="v{n}"><date>{_rfc2822(stamp.astimezone(UTC))}</date>'
            f"<size>{10 + n}kb</size><source_type>D</source_type></version>"
        )
    parts.append(f"<title>{_x(paper.title)}</title>")
    parts.append(f"<authors>{_x(', '.join(paper.authors))}</authors>")
    parts.append(f"<categories>{_x(' '.join(paper.categories))}</categories>")
    if paper.comment:
        parts.append(f"<comments>{_x(paper.comment)}</comments>")
    if paper.journal_ref:
        parts.append(f"<journal-ref>{_x(paper.journal_ref)}</journal-ref>")
    if paper.doi:
        parts.append(f"<doi>{_x(paper.doi)}</doi>")
    if paper.license:
        parts.append(f"<license>{_x(paper.license)}</license>")
    parts.append(f"<abstract>  {_x(paper.abstract)}\n</abstract>")
    meta = (
        ' <arXivRaw xmlns="http://arxiv.org/OAI/arXivRaw/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://arxiv.org/OAI/arXivRaw/ http://arxiv.org/OAI/arXivRaw.xsd">'
        f"\n {''.join(parts)}</arXivRaw>"
    )
    return f"<record>\n{header}\n<metadata>\n{meta}\n</metadata>\n</record>"


def render_oai(
    records: Sequence[FakePaper],
    *,
    request: Mapping[str, str] | None = None,
    token: str | None = None,
    cursor: int | None = None,
    complete_list_size: int | None = None,
    now: datetime | None = None,
) -> bytes:
    """An OAI-PMH ListRecords page in arXivRaw. `token=None` omits the resumptionToken
    element (a complete one-page list); `token=""` is the empty token ending a list."""
    now = now or datetime.now(UTC)
    req = dict(request or {"verb": "ListRecords", "metadataPrefix": "arXivRaw"})
    out = [_OAI_HEAD, _oai_request(req, now), "<ListRecords>"]
    out += [_raw_record(p) for p in records]
    if token is not None:
        attrs = ""
        if cursor is not None:
            attrs += f' cursor="{cursor}"'
        if complete_list_size is not None:
            attrs += f' completeListSize="{complete_list_size}"'
        out.append(f"<resumptionToken{attrs}>{_x(token)}</resumptionToken>")
    out += ["</ListRecords>", "</OAI-PMH>", ""]
    return "\n".join(out).encode()


def render_oai_error(
    code: str,
    message: str,
    *,
    request: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> bytes:
    now = now or datetime.now(UTC)
    return "\n".join(
        [
            _OAI_HEAD,
            _oai_request(dict(request or {}), now),
            f"<error code={quoteattr(code)}>{_x(message)}</error>",
            "</OAI-PMH>",
            "",
        ]
    ).encode()


MALFORMED_BODY = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n<rss version=\"2.0\"><channel>"
    b"<title>cs.AI updates on arXiv.org</title><item><title>Unclosed</channel></rss>\n"
)


# --- the server --------------------------------------------------------------------------

Response = tuple[int, str, bytes, dict[str, str]]
_XML = "application/xml; charset=utf-8"
_ATOM = "application/atom+xml; charset=utf-8"
_RSS = "application/rss+xml; charset=utf-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block shutdown
    fake: FakeArxiv

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up mid-response is part of the tests, not an error.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as arXiv; so every response has a length
    server: _Server
    timeout = 30  # an idle keep-alive connection's thread ends after this

    def do_GET(self) -> None:
        try:
            self.server.fake._handle(self)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeArxiv:
    """The fake arXiv; see the module docstring. Start with `with FakeArxiv() as fake:`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.papers: dict[str, FakePaper] = {}
        self.feeds: dict[str, list[tuple[str, str]]] = {}  # category → [(arxiv_id, type)]
        self.feed_day: date = datetime.now(EASTERN).date()
        self.pdfs: dict[str, bytes] = {}  # "2401.00001" or "2401.00001v2" → the PDF's bytes
        self.oai_page_size: int = 100
        self.latency: float = 0.0  # added to every response
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: list[Request] = []
        self._oai_sessions: dict[str, dict[str, str]] = {}
        self._last_oai: bytes | None = None
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeArxiv:
        httpd = _Server((self._host, self._port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in delay()/latency
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeArxiv:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeArxiv is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/query"

    @property
    def oai_url(self) -> str:
        return f"{self.url}/oai"

    @property
    def pdf_url(self) -> str:
        return f"{self.url}/pdf"

    def settings(self, **overrides: Any) -> Settings:
        """Settings whose arXiv URLs point at this server (no spacing unless overridden)."""
        values: dict[str, Any] = {
            "arxiv_rss_url": self.url,
            "arxiv_api_url": self.api_url,
            "arxiv_oai_url": self.oai_url,
            "arxiv_min_interval": 0.0,
            "arxiv_timeout": 5.0,
        }
        values.update(overrides)
        return Settings(**values)

    # -- content and faults ---------------------------------------------------------------

    def add_papers(self, papers: Iterable[FakePaper], *, announce: bool = True) -> None:
        """Add papers to the model and, with `announce`, to the feed of each category."""
        for paper in papers:
            self.papers[paper.arxiv_id] = paper
            if announce:
                for cat in paper.categories:
                    self.feeds.setdefault(cat, []).append(
                        (paper.arxiv_id, announce_type(paper, cat))
                    )

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, prefix: str) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    def reset(self) -> None:
        """Forget requests, faults and OAI sessions (the content stays)."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._oai_sessions.clear()
            self._last_oai = None

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[i]
                    return fault
        return None

    # -- request handling -----------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        record = Request(
            time.monotonic(), path, query, {k.lower(): v for k, v in h.headers.items()}
        )
        with self._lock:
            self._requests.append(record)
        fault = self._take_fault(path)
        record.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "delay":
            self._stopping.wait(fault.seconds)
        if self.latency:
            self._stopping.wait(self.latency)
        if fault is not None and fault.kind == "status":
            self._send(h, record, self._status_response(fault))
            return
        if fault is not None and fault.kind == "malformed":
            self._send(h, record, (200, _RSS, MALFORMED_BODY, {}))
            return
        response = self._route(path, query, fault)
        self._send(h, record, response, cut=fault is not None and fault.kind == "truncate")

    def _send(self, h: _Handler, record: Request, response: Response, *, cut: bool = False) -> None:
        code, ctype, body, headers = response
        record.status = code
        record.finished = time.monotonic()  # before the first byte: see the module docstring
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body[: len(body) // 2] if cut else body)
        h.wfile.flush()
        if cut:  # the connection ends mid-body, as when a proxy or arXiv itself drops it
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_WR)

    @staticmethod
    def _status_response(fault: Fault) -> Response:
        headers = dict(fault.headers)
        ra = fault.retry_after
        if isinstance(ra, datetime):
            headers["Retry-After"] = format_datetime(ra.astimezone(UTC), usegmt=True)
        elif isinstance(ra, int | float):
            headers["Retry-After"] = f"{ra:g}"
        elif ra is not None:
            headers["Retry-After"] = ra
        body = f"<html><body><h1>{fault.code}</h1><p>Fake arXiv says no.</p></body></html>\n"
        return fault.code, "text/html; charset=utf-8", body.encode(), headers

    def _route(self, path: str, query: dict[str, list[str]], fault: Fault | None) -> Response:
        parts = path.strip("/").split("/", 1)
        if len(parts) == 2 and parts[0] in ("rss", "atom") and parts[1]:
            return self._feed(parts[0], parts[1], fault)
        if path.rstrip("/") == "/api/query":
            return self._api(query, fault)
        if path.rstrip("/") == "/oai":
            return self._oai(query, fault)
        if len(parts) == 2 and parts[0] == "pdf" and parts[1]:
            return self._pdf(parts[1])
        return 404, "text/plain; charset=utf-8", b"Not Found\n", {}

    def _pdf(self, name: str) -> Response:
        data = self.pdfs.get(name) or self.pdfs.get(re.sub(r"v\d+$", "", name))
        if data is None:
            return 404, "text/plain; charset=utf-8", b"Not Found\n", {}
        return 200, "application/pdf", data, {}

    def _feed(self, kind: str, spec: str, fault: Fault | None) -> Response:
        tokens = [t for t in re.split(r"[+,\s]+", spec) if t]
        day = (fault.day if fault and fault.day else None) or self.feed_day
        items: list[tuple[FakePaper, str]] = []
        if fault is None or fault.kind != "empty":
            seen: set[str] = set()
            feeds = dict(self.feeds)
            for token in tokens:
                for cat, entries in feeds.items():
                    if cat != token and not cat.startswith(token + "."):
                        continue
                    for arxiv_id, announce in list(entries):
                        paper = self.papers.get(arxiv_id)
                        if paper is not None and arxiv_id not in seen:
                            seen.add(arxiv_id)
                            items.append((paper, announce))
        if kind == "atom":
            return 200, _ATOM, render_atom(tokens, items, day), {}
        return 200, _RSS, render_rss(tokens, items, day), {}

    def _api(self, query: dict[str, list[str]], fault: Fault | None) -> Response:
        def first(name: str, default: str) -> str:
            return (query.get(name) or [default])[0]

        qs = "&".join(f"{k}={','.join(v)}" for k, v in query.items())
        try:
            start = int(first("start", "0"))
            max_results = int(first("max_results", "10"))
        except ValueError:
            return 400, _ATOM, render_api_error("bad_paging", "start and max_results are ints"), {}
        if start < 0 or not 0 <= max_results <= 2000:
            msg = "max_results must be in [0, 2000] and start >= 0"
            return 400, _ATOM, render_api_error("bad_paging", msg), {}
        raw_ids = [i.strip() for v in query.get("id_list", []) for i in v.split(",") if i.strip()]
        found: list[tuple[FakePaper, int | None]] = []
        if raw_ids:
            for raw in raw_ids:
                try:
                    arxiv_id, version = parse_arxiv_id(raw)
                except InvalidArxivId:
                    code = "incorrect_id_format_for_" + re.sub(r"\W", "_", raw)
                    body = render_api_error(code, f"incorrect id format for {raw}")
                    return 400, _ATOM, body, {}
                paper = self.papers.get(arxiv_id)
                if paper is not None and (version is None or 1 <= version <= paper.version):
                    found.append((paper, version))
        else:
            search = first("search_query", "")
            cat = search[4:] if search.startswith("cat:") else None
            papers = sorted(self.papers.values(), key=lambda p: p.arxiv_id)
            found = [(p, None) for p in papers if cat is None or cat in p.categories]
        if fault is not None and fault.kind == "empty":
            found = []
        page = found[start : start + max_results]
        body = render_api(page, total=len(found), start=start, items_per_page=max_results, query=qs)
        return 200, _ATOM, body, {}

    def _oai(self, query: dict[str, list[str]], fault: Fault | None) -> Response:
        args = {k: v[0] for k, v in query.items() if v}

        def error(code: str, message: str) -> Response:
            return 200, _XML, render_oai_error(code, message, request=args), {}

        if fault is not None and fault.kind == "repeat_page" and self._last_oai is not None:
            return 200, _XML, self._last_oai, {}
        if args.get("verb") != "ListRecords":
            return error("badVerb", "This fake arXiv only answers ListRecords.")
        token = args.get("resumptionToken")
        if token is not None:
            if set(args) != {"verb", "resumptionToken"}:
                return error("badArgument", "resumptionToken is an exclusive argument.")
            session_id, _, cursor_text = token.partition("|")
            with self._lock:
                session = self._oai_sessions.get(session_id)
            if session is None or not cursor_text.isdigit():
                msg = "The value of the resumptionToken argument is invalid or expired."
                return error("badResumptionToken", msg)
            cursor = int(cursor_text)
        else:
            allowed = {"verb", "metadataPrefix", "set", "from", "until"}
            if "metadataPrefix" not in args or set(args) - allowed:
                return error("badArgument", "Illegal or missing arguments.")
            if args["metadataPrefix"] != "arXivRaw":
                msg = f"Format {args['metadataPrefix']} is not served by this fake."
                return error("cannotDisseminateFormat", msg)
            try:
                for name in ("from", "until"):
                    if name in args:
                        date.fromisoformat(args[name])
            except ValueError:
                return error("badArgument", "from and until are YYYY-MM-DD dates.")
            session = {k: args[k] for k in ("set", "from", "until") if k in args}
            with self._lock:
                session_id = str(7_000_000 + len(self._oai_sessions) + 1)
                self._oai_sessions[session_id] = session
            cursor = 0
        matches = self._oai_matches(session)
        if fault is not None and fault.kind == "empty":
            matches = []
        if not matches:
            msg = (
                "The combination of the values of the from, until, set and metadataPrefix "
                "arguments results in an empty list."
            )
            return error("noRecordsMatch", msg)
        size = max(1, self.oai_page_size)
        page = matches[cursor : cursor + size]
        following = cursor + size
        out_token: str | None
        if following < len(matches):
            out_token = f"{session_id}|{following}"
        else:
            out_token = "" if cursor > 0 else None  # a one-page list carries no token at all
        body = render_oai(
            page,
            request=args,
            token=out_token,
            cursor=cursor,
            complete_list_size=len(matches),
        )
        with self._lock:
            self._last_oai = body
        return 200, _XML, body, {}

    def _oai_matches(self, session: Mapping[str, str]) -> list[FakePaper]:
        lo = date.fromisoformat(session["from"]) if "from" in session else None
        hi = date.fromisoformat(session["until"]) if "until" in session else None
        wanted = session.get("set")
        out = []
        for paper in sorted(self.papers.values(), key=lambda p: (p.oai_datestamp, p.arxiv_id)):
            stamp = paper.oai_datestamp
            if (lo and stamp < lo) or (hi and stamp > hi):
                continue
            if wanted and wanted not in paper.set_specs():
                continue
            out.append(paper)
        return out


def running(**attrs: Any) -> Iterator[FakeArxiv]:
    """Generator body for a pytest fixture: `yield from running()`; attrs set on the fake."""
    with FakeArxiv() as fake:
        for name, value in attrs.items():
            setattr(fake, name, value)
        yield fake
