"""The Atom 1.0 documents of `/api/query`, shaped as export.arxiv.org writes them: the same
namespaces and prefixes (`opensearch:`, `arxiv:`), elements in arXiv's order, entry ids
`http://arxiv.org/abs/IDvN` with abs/pdf/doi links on arxiv.org, and arXiv's error feed
(one entry whose id is `https://arxiv.org/api/errors#...`, its summary the message), so
arXiv's clients and parsers read a Papershelf instance as they read arXiv.

What is ours: the feed's id, self link and error feed id start at the site's address, and the
error entry's author is this software. Text passes `strip_xml_illegal` and lxml escapes it, so
the document stays well-formed whatever a row or the query holds.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from lxml import etree

from app.ingest.text import strip_xml_illegal
from app.search.arxiv_search import ArxivEntry

ATOM = "http://www.w3.org/2005/Atom"
ARXIV = "http://arxiv.org/schemas/atom"
OPENSEARCH = "http://a9.com/-/spec/opensearch/1.1/"
# The order arXiv declares them in.
NSMAP = {"opensearch": OPENSEARCH, "arxiv": ARXIV, None: ATOM}
MEDIA_TYPE = "application/atom+xml; charset=UTF-8"
ERRORS = "https://arxiv.org/api/errors"


def _clean(text: str) -> str:
    return strip_xml_illegal(text)


def _one_line(text: str) -> str:
    return " ".join(_clean(text).split())


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, {k: _clean(v) for k, v in attrs.items()})
    if text is not None:
        el.text = _clean(text)
    return el


def _a(tag: str) -> str:
    return f"{{{ATOM}}}{tag}"


def _x(tag: str) -> str:
    return f"{{{ARXIV}}}{tag}"


def _os(tag: str) -> str:
    return f"{{{OPENSEARCH}}}{tag}"


def _serialize(feed: etree._Element) -> bytes:
    etree.indent(feed, space="  ")
    body: bytes = etree.tostring(feed, xml_declaration=True, encoding="UTF-8")
    return body + b"\n"


def feed_id(site: str, query_string: str) -> str:
    """`<site>/api/<base64 SHA-1 of the query>`: stable per query, as arXiv's."""
    digest = hashlib.sha1(query_string.encode(), usedforsecurity=False).digest()
    return f"{site}/api/{base64.b64encode(digest).decode().rstrip('=')}"


def _entry(parent: etree._Element, e: ArxivEntry) -> None:
    vid = f"{e.arxiv_id}v{e.version}" if e.version is not None else e.arxiv_id
    entry = _sub(parent, _a("entry"))
    _sub(entry, _a("id"), f"http://arxiv.org/abs/{vid}")
    _sub(entry, _a("title"), _one_line(e.title))
    _sub(entry, _a("updated"), _iso(e.updated))
    _sub(entry, _a("link"), href=f"https://arxiv.org/abs/{vid}", rel="alternate", type="text/html")
    _sub(
        entry,
        _a("link"),
        href=f"https://arxiv.org/pdf/{vid}",
        rel="related",
        type="application/pdf",
        title="pdf",
    )
    _sub(entry, _a("summary"), _one_line(e.abstract))
    # arXiv lists the classes (ACM, MSC) as categories too, after the arXiv ones.
    for term in (*e.categories, *e.classes):
        _sub(entry, _a("category"), term=term, scheme=ARXIV)
    _sub(entry, _a("published"), _iso(e.published))
    if e.comments:
        _sub(entry, _x("comment"), _one_line(e.comments))
    _sub(entry, _x("primary_category"), term=e.primary_category)
    if e.journal_ref:
        _sub(entry, _x("journal_ref"), _one_line(e.journal_ref))
    for name in e.authors:
        _sub(_sub(entry, _a("author")), _a("name"), name)
    if e.doi:
        _sub(entry, _x("doi"), e.doi)
        _sub(entry, _a("link"), rel="related", href=f"https://doi.org/{e.doi}", title="doi")


def results_feed(
    *,
    site: str,
    title_query: str,
    link_query: str,
    entries: Sequence[ArxivEntry],
    total: int,
    start: int,
    items_per_page: int,
    now: datetime,
) -> bytes:
    """A page of answers. `title_query` is arXiv's `search_query=…&id_list=…&start=…&
    max_results=…` (the query in canonical form), `link_query` the self link's query."""
    feed = etree.Element(_a("feed"), nsmap=NSMAP)
    _sub(feed, _a("id"), feed_id(site, title_query))
    _sub(feed, _a("title"), f"arXiv Query: {title_query}")
    _sub(feed, _a("updated"), _iso(now))
    _sub(feed, _a("link"), href=f"{site}/api/query?{link_query}", type="application/atom+xml")
    _sub(feed, _os("itemsPerPage"), str(items_per_page))
    _sub(feed, _os("totalResults"), str(total))
    _sub(feed, _os("startIndex"), str(start))
    for e in entries:
        _entry(feed, e)
    return _serialize(feed)


def error_slug(message: str) -> str:
    """The error id's fragment: the message with `_` for spaces (arXiv's form), escaped."""
    return quote(re.sub(r"\s+", "_", _clean(message).strip()), safe="-._~:,!*'()")


def error_feed(*, site: str, message: str, now: datetime) -> bytes:
    """arXiv's answer to bad input (sent with HTTP 400)."""
    href = f"{ERRORS}#{error_slug(message)}"
    feed = etree.Element(_a("feed"), nsmap=NSMAP)
    _sub(feed, _a("id"), f"{site}/")
    _sub(feed, _a("title"), "arXiv Search Results")
    _sub(feed, _a("updated"), _iso(now))
    _sub(feed, _os("itemsPerPage"), "1")
    _sub(feed, _os("totalResults"), "1")
    _sub(feed, _os("startIndex"), "0")
    entry = _sub(feed, _a("entry"))
    _sub(entry, _a("id"), href)
    _sub(entry, _a("title"), "Error")
    _sub(entry, _a("updated"), _iso(now))
    _sub(entry, _a("link"), href=href, rel="alternate", type="text/html")
    _sub(entry, _a("summary"), _one_line(message))
    _sub(_sub(entry, _a("author")), _a("name"), "Papershelf api")
    return _serialize(feed)
