"""export.arxiv.org `/api/query` responses (Atom 1.0 + OpenSearch) → ParsedPage.

Handles the current format and the 2016 legacy one (namespaces declared per element, a
`type="html"` title, `arxiv:doi`/`arxiv:journal_ref`). Per entry: the id's `vN` is the version,
`published` the v1 time and `updated` this version's time, `arxiv:primary_category` the primary,
`category` terms that are arXiv categories (canonicalised) the categories and every other term
(ACM "I.2.7", MSC "68T05") a class. Author affiliations are ignored.

Error policy: an entry without a usable id, title or abstract, or with an unknown primary
category, becomes a RecordError (source, the entry's line, its id when readable) and the other
entries are kept. The HTTP-400 error feed (one entry whose id is `…/api/errors#…`) raises
UpstreamError. A document that is empty, truncated, not well-formed, not in its declared
encoding or not an Atom feed raises DocumentError and yields nothing. An empty result is an
empty page with total 0.
"""

from __future__ import annotations

from lxml import etree

from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.ingest.records import DocumentError, PaperRecord, ParsedPage, RecordError, UpstreamError
from app.ingest.safe_xml import parse_xml
from app.ingest.text import clean_optional, clean_text, parse_iso_datetime, repair_mojibake
from app.taxonomy import get_taxonomy

ATOM = "http://www.w3.org/2005/Atom"
ARXIV = "http://arxiv.org/schemas/atom"
OPENSEARCH = "http://a9.com/-/spec/opensearch/1.1/"
_NS = {"a": ATOM, "arxiv": ARXIV, "os": OPENSEARCH}
_ERROR_ID = ("http://arxiv.org/api/errors", "https://arxiv.org/api/errors")
SOURCE_TAG = "arxiv-api"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _text(el: etree._Element, path: str) -> str | None:
    found = el.find(path, _NS)
    if found is None:
        return None
    return repair_mojibake("".join(found.itertext()))


def _entry(entry: etree._Element, source: str) -> PaperRecord | RecordError:
    line = entry.sourceline
    raw_id = (_text(entry, "a:id") or "").strip()
    try:
        arxiv_id, version = parse_arxiv_id(raw_id)
    except InvalidArxivId as exc:
        return RecordError(source, line, raw_id or None, str(exc))
    title = clean_text(_text(entry, "a:title") or "")
    if not title:
        return RecordError(source, line, arxiv_id, "entry has no title")
    abstract = clean_text(_text(entry, "a:summary") or "")
    if not abstract:
        return RecordError(source, line, arxiv_id, "entry has no abstract")
    prim_el = entry.find("arxiv:primary_category", _NS)
    prim_term = prim_el.get("term") if prim_el is not None else None
    terms = [t for c in entry.iterfind("a:category", _NS) if (t := c.get("term"))]
    primary, categories, classes = get_taxonomy().resolve(terms, prim_term)
    if primary is None:
        what = f"unknown primary category {prim_term!r}" if prim_term else "no arXiv category"
        return RecordError(source, line, arxiv_id, what)
    authors = [
        name
        for a in entry.iterfind("a:author", _NS)
        if (name := clean_text(_text(a, "a:name") or ""))
    ]
    published = parse_iso_datetime(_text(entry, "a:published"))
    updated = parse_iso_datetime(_text(entry, "a:updated"))
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=authors,
        primary_category=primary,
        categories=categories,
        version=version,
        comments=clean_optional(_text(entry, "arxiv:comment")),
        journal_ref=clean_optional(_text(entry, "arxiv:journal_ref")),
        doi=clean_optional(_text(entry, "arxiv:doi")),
        classes=classes,
        first_submitted_at=published,
        last_updated_at=updated or published,
        source=SOURCE_TAG,
        line=line,
    )


def parse_api_response(data: bytes, source: str = "export.arxiv.org/api/query") -> ParsedPage:
    """Parse one `/api/query` response body (see the module docstring for the policy)."""
    root = parse_xml(data, source)
    if root.tag != f"{{{ATOM}}}feed":
        raise DocumentError(source, f"not an Atom feed (root element {root.tag!r})", line=1)
    entries = root.findall("a:entry", _NS)
    if len(entries) == 1:
        eid = (_text(entries[0], "a:id") or "").strip()
        if eid.startswith(_ERROR_ID):
            code = eid.partition("#")[2] or "error"
            message = clean_text(_text(entries[0], "a:summary") or "") or code
            raise UpstreamError(code, message)
    page = ParsedPage(
        total=_int(_text(root, "os:totalResults")),
        start=_int(_text(root, "os:startIndex")),
    )
    for entry in entries:
        item = _entry(entry, source)
        if isinstance(item, RecordError):
            page.errors.append(item)
        else:
            page.papers.append(item)
    return page
