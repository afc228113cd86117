"""rss.arxiv.org announcement feeds, RSS 2.0 and Atom → ParsedPage with a day.

Spec: arXiv's `rss_specifications.md` and `atom_specifications.md`. Per item: guid/id
`oai:arXiv.org:<id>vN` (id and version), `arxiv:announce_type` new | cross | replace |
replace-cross, description/summary `arXiv:<id>vN Announce Type: … \\nAbstract: …`, repeated
`category`, `dc:creator` (comma-joined authors), `dc:rights` (licence), optional `arxiv:DOI`
and `arxiv:journal_reference`.

The day: the channel's `pubDate` (else `lastBuildDate`, else an item's `pubDate`); for Atom
an entry's `published` (else the feed's `updated`), converted to the US-Eastern calendar day,
which is how arXiv dates its announcements. The feed's categories come from the feed link
(`rss.arxiv.org/rss/cs.AI+cs.LG`, else the title "cs.AI updates on arXiv.org"); an archive
("cs") stands for all its categories; all are canonicalised.

Announcements: one per feed category the paper has, with `position` = the item's 0-based
order in the feed. The feeds do not say which category is primary; arXiv lists it first, so the
first category is the primary. When exactly one feed category matches, the item's own
announce type is used as is; otherwise the primary gets the base kind (replace for
replace/replace-cross, else new) and the other categories its cross form (cross /
replace-cross). An empty (weekend, holiday) feed is an empty page with the day set.

Error policy: an item without a usable id, title or abstract, or whose categories include no
known arXiv category, becomes a RecordError (source, the item's line, its id when readable);
the other items are kept. A document that is empty, truncated, not well-formed, not in its
declared encoding, or neither RSS 2.0 nor Atom raises DocumentError and yields nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree

from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.ingest.records import (
    AnnounceKind,
    Announcement,
    DocumentError,
    PaperRecord,
    ParsedPage,
    RecordError,
)
from app.ingest.safe_xml import parse_xml
from app.ingest.text import (
    clean_optional,
    clean_text,
    parse_iso_datetime,
    parse_rfc2822,
    split_authors,
)
from app.taxonomy import get_taxonomy

ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"
SOURCE_TAG = "rss"

_DESCRIPTION = re.compile(
    r"\s*arXiv:(\S+)\s+Announce\s+Type:\s*([\w-]+)\s*(?:Abstract:)?(.*)", re.DOTALL | re.IGNORECASE
)
_FEED_PATH = re.compile(r"rss\.arxiv\.org/(?:rss|atom)/([^/?#\s]+)", re.IGNORECASE)
_FEED_TITLE = re.compile(r"^\s*(.+?)\s+updates\s+on\s+arXiv", re.IGNORECASE)
_CROSS = {AnnounceKind.NEW: AnnounceKind.CROSS, AnnounceKind.REPLACE: AnnounceKind.REPLACE_CROSS}


def _eastern_day(moment: datetime) -> date:
    """The US-Eastern calendar day of an aware datetime."""
    try:
        return moment.astimezone(ZoneInfo("America/New_York")).date()
    except ZoneInfoNotFoundError:
        # No tz database (slim images): US rule since 2007, DST from the second Sunday of
        # March to the first Sunday of November, both at 02:00 local.
        utc = moment.astimezone(UTC)
        year = utc.year
        march = datetime(year, 3, 8, 7, tzinfo=UTC)
        dst_start = march + timedelta(days=(6 - march.weekday()) % 7)
        november = datetime(year, 11, 1, 6, tzinfo=UTC)
        dst_end = november + timedelta(days=(6 - november.weekday()) % 7)
        offset = 4 if dst_start <= utc < dst_end else 5
        return (utc - timedelta(hours=offset)).date()


def _local(el: etree._Element, name: str) -> list[etree._Element]:
    """Children with this local name in any namespace (arXiv's prefixes have varied)."""
    return [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == name]


def _first_text(el: etree._Element, name: str) -> str | None:
    for child in _local(el, name):
        return "".join(child.itertext())
    return None


def _feed_categories(link: str | None, title: str | None) -> list[str]:
    tax = get_taxonomy()
    tokens: list[str] = []
    m = _FEED_PATH.search(link or "")
    if m:
        tokens = re.split(r"[+,]", m.group(1))
    else:
        t = _FEED_TITLE.search(title or "")
        if t:
            tokens = re.split(r"[+,\s]+", t.group(1))
    out: dict[str, None] = {}
    for token in tokens:
        for cat in tax.expand(token):
            out[cat] = None
    return list(out)


def _kind(raw: str | None) -> AnnounceKind | None:
    try:
        return AnnounceKind((raw or "").strip().lower())
    except ValueError:
        return None


def _announcements(
    cats: list[str], feed: list[str], kind: AnnounceKind, day: date | None, position: int
) -> list[Announcement]:
    if day is None:
        return []
    matched = [c for c in cats if c in feed]
    if len(matched) == 1:
        return [Announcement(matched[0], day, kind, position)]
    base = AnnounceKind.REPLACE if kind.value.startswith("replace") else AnnounceKind.NEW
    primary = cats[0]
    return [Announcement(c, day, base if c == primary else _CROSS[base], position) for c in matched]


def _authors(item: etree._Element) -> list[str]:
    creator = _first_text(item, "creator")
    if creator is not None:
        return split_authors(creator)
    # Plain Atom puts people in <author><name>; accept that too.
    return [n for a in _local(item, "author") if (n := clean_text(_first_text(a, "name") or ""))]


def _item(
    item: etree._Element,
    *,
    atom: bool,
    source: str,
    position: int,
    feed: list[str],
    day: date | None,
) -> PaperRecord | RecordError:
    line = item.sourceline
    body = _first_text(item, "summary" if atom else "description") or ""
    desc = _DESCRIPTION.match(body)
    raw_id = (_first_text(item, "id" if atom else "guid") or "").strip()
    if not raw_id and desc:
        raw_id = desc.group(1)
    try:
        arxiv_id, version = parse_arxiv_id(raw_id)
    except InvalidArxivId as exc:
        return RecordError(source, line, raw_id or None, str(exc))
    title = clean_text(_first_text(item, "title") or "")
    if not title:
        return RecordError(source, line, arxiv_id, "item has no title")
    abstract = clean_text(desc.group(3) if desc else body)
    if not abstract:
        return RecordError(source, line, arxiv_id, "item has no abstract")
    kind = _kind(_first_text(item, "announce_type")) or _kind(desc.group(2) if desc else None)
    if kind is None:
        return RecordError(source, line, arxiv_id, "item has no known announce type")
    if atom:
        terms = [t for c in _local(item, "category") if (t := c.get("term"))]
    else:
        terms = [t for c in _local(item, "category") if (t := (c.text or "").strip())]
    primary, cats, classes = get_taxonomy().resolve(terms)
    if primary is None:
        return RecordError(
            source, line, arxiv_id, f"unknown or missing primary category in {terms!r}"
        )
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=_authors(item),
        primary_category=primary,
        categories=cats,
        version=version,
        journal_ref=clean_optional(_first_text(item, "journal_reference")),
        doi=clean_optional(_first_text(item, "DOI") or _first_text(item, "doi")),
        license=clean_optional(_first_text(item, "rights")),
        classes=classes,
        announcements=_announcements(cats, feed, kind, day, position),
        source=SOURCE_TAG,
        line=line,
    )


def _day(*candidates: datetime | None) -> date | None:
    for moment in candidates:
        if moment is not None:
            return _eastern_day(moment)
    return None


def _rss(root: etree._Element, source: str) -> ParsedPage:
    channel = next(iter(_local(root, "channel")), None)
    if channel is None:
        raise DocumentError(source, "RSS document without a channel", line=root.sourceline)
    items = _local(channel, "item")
    item_dates = (parse_rfc2822(_first_text(i, "pubDate")) for i in items)
    day = _day(
        parse_rfc2822(_first_text(channel, "pubDate")),
        parse_rfc2822(_first_text(channel, "lastBuildDate")),
        next((d for d in item_dates if d), None),
    )
    links = [_first_text(channel, "link")] + [a.get("href") for a in _local(channel, "link")]
    link = next((x for x in links if x and _FEED_PATH.search(x)), None)
    feed = _feed_categories(link, _first_text(channel, "title"))
    return _page(items, atom=False, source=source, feed=feed, day=day)


def _atom(root: etree._Element, source: str) -> ParsedPage:
    entries = root.findall(f"{{{ATOM}}}entry")
    published = (parse_iso_datetime(_first_text(e, "published")) for e in entries)
    day = _day(
        next((d for d in published if d), None), parse_iso_datetime(_first_text(root, "updated"))
    )
    hrefs = [a.get("href") for a in root.findall(f"{{{ATOM}}}link")]
    hrefs.append(_first_text(root, "id"))
    link = next((x for x in hrefs if x and _FEED_PATH.search(x)), None)
    feed = _feed_categories(link, _first_text(root, "title"))
    return _page(entries, atom=True, source=source, feed=feed, day=day)


def _page(
    items: list[etree._Element], *, atom: bool, source: str, feed: list[str], day: date | None
) -> ParsedPage:
    page = ParsedPage(total=len(items), start=0, day=day, feed_categories=feed)
    for position, item in enumerate(items):
        parsed = _item(item, atom=atom, source=source, position=position, feed=feed, day=day)
        if isinstance(parsed, RecordError):
            page.errors.append(parsed)
        else:
            page.papers.append(parsed)
    return page


def parse_feed(data: bytes, source: str = "rss.arxiv.org") -> ParsedPage:
    """Parse an RSS 2.0 or Atom announcement feed (see the module docstring for the policy)."""
    root = parse_xml(data, source)
    if root.tag == "rss":
        return _rss(root, source)
    if root.tag == f"{{{ATOM}}}feed":
        return _atom(root, source)
    raise DocumentError(source, f"neither RSS 2.0 nor Atom (root {root.tag!r})", line=1)
