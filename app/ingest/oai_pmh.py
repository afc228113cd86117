"""arXiv OAI-PMH responses (`ListRecords`, `GetRecord`) → OaiPage (a ParsedPage).

Metadata formats, told apart per record by the metadata element's namespace:
* `arXiv`: split names (keyname/forenames/suffix), space-separated categories (primary first),
  licence, `created`/`updated` dates (date only: midnight UTC), msc-class/acm-class → classes.
* `arXivRaw`: adds the version history: `<version version="vN"><date>RFC 2822</date>
  <size>…</size></version>` → versions, version = latest, first_submitted_at = v1's date,
  last_updated_at = the latest's. Authors are one string, split on commas and "and".
* `oai_dc`: the id from the `dc:identifier` abs URL, authors "Keyname, Forenames" turned round,
  subjects are category *names* ("Computer Science - Artificial Intelligence") mapped back to
  ids through the taxonomy (the header's setSpec when none maps), the first one taken as
  primary since oai_dc does not say; other subjects (MSC/ACM codes) → classes; the first
  description is the abstract, a later "Comment: …" one the comments; first/last `dc:date`.

Paging: `resumptionToken` text → resumption_token (None when absent or empty: the list is
complete), `completeListSize` → total, `cursor` → start. Records whose header has
status="deleted" are skipped and their ids listed in `OaiPage.deleted`.

Error policy: a record without a usable id, title or abstract, or with no known category or an
unknown primary, becomes a RecordError (source, the record's line, its id when readable); the
other records are kept. OAI `error` elements: `noRecordsMatch` is an empty page; any other code
(badResumptionToken, badArgument, idDoesNotExist, …) raises UpstreamError. A document that is
empty, truncated, not well-formed, not in its declared encoding, or not OAI-PMH raises
DocumentError and yields nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.ingest.records import (
    DocumentError,
    PaperRecord,
    ParsedPage,
    RecordError,
    UpstreamError,
    Version,
)
from app.ingest.safe_xml import parse_xml
from app.ingest.text import (
    clean_optional,
    clean_text,
    join_name,
    parse_iso_datetime,
    parse_rfc2822,
    split_authors,
    uninvert_name,
)
from app.taxonomy import Taxonomy, get_taxonomy

OAI = "http://www.openarchives.org/OAI/2.0/"
ARXIV_NS = "http://arxiv.org/OAI/arXiv/"
ARXIV_RAW_NS = "http://arxiv.org/OAI/arXivRaw/"
OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"
DC = "http://purl.org/dc/elements/1.1/"
_NS = {"o": OAI, "dc": DC}


@dataclass(slots=True)
class OaiPage(ParsedPage):
    deleted: list[str] = field(default_factory=list)  # ids the repository reports as deleted


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _child_text(el: etree._Element, ns: str, name: str) -> str | None:
    found = el.find(f"{{{ns}}}{name}")
    return None if found is None else "".join(found.itertext())


def _header_id(header: etree._Element | None) -> str | None:
    if header is None:
        return None
    raw = (header.findtext("o:identifier", None, _NS) or "").strip()
    return raw or None


def _resolve_id(raw: str | None, header_raw: str | None) -> tuple[str, int | None]:
    """The metadata's id, else the header's `oai:arXiv.org:…` identifier."""
    for candidate in (raw, header_raw):
        if candidate and candidate.strip():
            return parse_arxiv_id(candidate)
    raise InvalidArxivId("", "record has no id")


def _core(
    source: str,
    line: int | None,
    arxiv_id: str,
    title_raw: str | None,
    abstract_raw: str | None,
    primary: str | None,
    bad_primary: str | None,
) -> tuple[str, str, str] | RecordError:
    """(title, abstract, primary), or the RecordError that rules the record out."""
    title = clean_text(title_raw or "")
    if not title:
        return RecordError(source, line, arxiv_id, "record has no title")
    abstract = clean_text(abstract_raw or "")
    if not abstract:
        return RecordError(source, line, arxiv_id, "record has no abstract")
    if primary is None:
        what = f"unknown primary category {bad_primary!r}" if bad_primary else "no arXiv category"
        return RecordError(source, line, arxiv_id, what)
    return title, abstract, primary


def _class_terms(meta: etree._Element, ns: str) -> list[str]:
    return [t for name in ("msc-class", "acm-class") if (t := _child_text(meta, ns, name))]


def _arxiv_categories(
    tax: Taxonomy, raw: str | None, extra: list[str]
) -> tuple[str | None, list[str], list[str], str | None]:
    terms = (raw or "").split()
    first = terms[0] if terms else None
    primary, cats, classes = tax.resolve(terms, first)
    _, more = tax.partition(extra)
    classes += [c for c in more if c not in classes]
    return primary, cats, classes, first


def _parse_arxiv(
    meta: etree._Element, header: etree._Element | None, source: str, line: int | None
) -> PaperRecord | RecordError:
    ns = ARXIV_NS
    arxiv_id, _ = _resolve_id(_child_text(meta, ns, "id"), _header_id(header))
    authors: list[str] = []
    for author in meta.iterfind(f"{{{ns}}}authors/{{{ns}}}author"):
        name = join_name(
            _child_text(author, ns, "keyname") or "",
            _child_text(author, ns, "forenames") or "",
            _child_text(author, ns, "suffix") or "",
        )
        if name:
            authors.append(name)
    primary, cats, classes, first = _arxiv_categories(
        get_taxonomy(), _child_text(meta, ns, "categories"), _class_terms(meta, ns)
    )
    created = parse_iso_datetime(_child_text(meta, ns, "created"))
    updated = parse_iso_datetime(_child_text(meta, ns, "updated"))
    core = _core(
        source,
        line,
        arxiv_id,
        _child_text(meta, ns, "title"),
        _child_text(meta, ns, "abstract"),
        primary,
        first,
    )
    if isinstance(core, RecordError):
        return core
    title, abstract, primary = core
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=authors,
        primary_category=primary,
        categories=cats,
        comments=clean_optional(_child_text(meta, ns, "comments")),
        journal_ref=clean_optional(_child_text(meta, ns, "journal-ref")),
        doi=clean_optional(_child_text(meta, ns, "doi")),
        license=clean_optional(_child_text(meta, ns, "license")),
        classes=classes,
        first_submitted_at=created,
        last_updated_at=updated or created,
        source="oai:arXiv",
        line=line,
    )


def _parse_raw(
    meta: etree._Element, header: etree._Element | None, source: str, line: int | None
) -> PaperRecord | RecordError:
    ns = ARXIV_RAW_NS
    arxiv_id, _ = _resolve_id(_child_text(meta, ns, "id"), _header_id(header))
    versions: list[Version] = []
    for v in meta.iterfind(f"{{{ns}}}version"):
        label = (v.get("version") or "").strip().lstrip("vV")
        if not label.isdigit():
            continue
        size = clean_optional(_child_text(v, ns, "size"))
        versions.append(Version(int(label), parse_rfc2822(_child_text(v, ns, "date")), size))
    versions.sort(key=lambda v: v.number)
    primary, cats, classes, first = _arxiv_categories(
        get_taxonomy(), _child_text(meta, ns, "categories"), _class_terms(meta, ns)
    )
    core = _core(
        source,
        line,
        arxiv_id,
        _child_text(meta, ns, "title"),
        _child_text(meta, ns, "abstract"),
        primary,
        first,
    )
    if isinstance(core, RecordError):
        return core
    title, abstract, primary = core
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=split_authors(_child_text(meta, ns, "authors") or ""),
        primary_category=primary,
        categories=cats,
        version=versions[-1].number if versions else None,
        versions=versions,
        comments=clean_optional(_child_text(meta, ns, "comments")),
        journal_ref=clean_optional(_child_text(meta, ns, "journal-ref")),
        doi=clean_optional(_child_text(meta, ns, "doi")),
        license=clean_optional(_child_text(meta, ns, "license")),
        classes=classes,
        first_submitted_at=versions[0].submitted_at if versions else None,
        last_updated_at=versions[-1].submitted_at if versions else None,
        source="oai:arXivRaw",
        line=line,
    )


def _set_categories(tax: Taxonomy, header: etree._Element | None) -> list[str]:
    """Categories named by setSpecs: "physics:hep-th" → hep-th, "cs:cs:AI" → cs.AI."""
    if header is None:
        return []
    out: list[str] = []
    for spec in header.iterfind("o:setSpec", _NS):
        parts = (spec.text or "").strip().split(":")
        candidates = [f"{parts[-2]}.{parts[-1]}"] if len(parts) >= 3 else []
        candidates.append(parts[-1])
        for cand in candidates:
            canon = tax.canonical(cand)
            if canon and canon not in out:
                out.append(canon)
                break
    return out


def _parse_dc(
    meta: etree._Element, header: etree._Element | None, source: str, line: int | None
) -> PaperRecord | RecordError:
    tax = get_taxonomy()
    arxiv_id: str | None = None
    doi: str | None = None
    journal_ref: str | None = None
    for ident in meta.iterfind("dc:identifier", _NS):
        value = clean_text(ident.text or "")
        if not value:
            continue
        if value.lower().startswith("doi:"):
            doi = doi or value[4:].strip()
        elif arxiv_id is None and "arxiv.org/" in value:
            arxiv_id = value
        elif not value.startswith(("http://", "https://")):
            journal_ref = journal_ref or value
    parsed_id, _ = _resolve_id(arxiv_id, _header_id(header))
    cats: list[str] = []
    others: list[str] = []
    for subject in meta.iterfind("dc:subject", _NS):
        text = clean_text(subject.text or "")
        canon = tax.from_subject_name(text) or tax.canonical(text)
        if canon:
            if canon not in cats:
                cats.append(canon)
        elif text:
            others.append(text)
    if not cats:
        cats = _set_categories(tax, header)
    _, classes = tax.partition(others)
    descriptions = [d.text or "" for d in meta.iterfind("dc:description", _NS)]
    abstract = descriptions[0] if descriptions else None
    comments = None
    for extra in descriptions[1:]:
        text = clean_text(extra)
        if text:
            comments = text.removeprefix("Comment:").strip() or None
            break
    dates = [d for d in (parse_iso_datetime(x.text) for x in meta.iterfind("dc:date", _NS)) if d]
    core = _core(
        source,
        line,
        parsed_id,
        meta.findtext("dc:title", None, _NS),
        abstract,
        cats[0] if cats else None,
        None,
    )
    if isinstance(core, RecordError):
        return core
    title, abstract_text, primary = core
    return PaperRecord(
        arxiv_id=parsed_id,
        title=title,
        abstract=abstract_text,
        authors=[n for c in meta.iterfind("dc:creator", _NS) if (n := uninvert_name(c.text or ""))],
        primary_category=primary,
        categories=cats,
        comments=comments,
        journal_ref=journal_ref,
        doi=doi,
        classes=classes,
        first_submitted_at=dates[0] if dates else None,
        last_updated_at=dates[-1] if dates else None,
        source="oai:oai_dc",
        line=line,
    )


_PARSERS = {
    f"{{{ARXIV_NS}}}arXiv": _parse_arxiv,
    f"{{{ARXIV_RAW_NS}}}arXivRaw": _parse_raw,
    f"{{{OAI_DC_NS}}}dc": _parse_dc,
}


def _record(record: etree._Element, source: str, page: OaiPage) -> None:
    header = record.find("o:header", _NS)
    line = record.sourceline
    header_raw = _header_id(header)
    if header is not None and header.get("status") == "deleted":
        try:
            page.deleted.append(parse_arxiv_id(header_raw or "")[0])
        except InvalidArxivId:
            page.deleted.append(header_raw or "")
        return
    metadata = record.find("o:metadata", _NS)
    meta = next(iter(metadata), None) if metadata is not None else None
    if meta is None or not isinstance(meta.tag, str):
        page.errors.append(RecordError(source, line, header_raw, "record has no metadata"))
        return
    parser = _PARSERS.get(meta.tag)
    if parser is None:
        msg = f"unsupported metadata format {etree.QName(meta).namespace!r}"
        page.errors.append(RecordError(source, line, header_raw, msg))
        return
    try:
        item = parser(meta, header, source, line)
    except InvalidArxivId as exc:
        page.errors.append(RecordError(source, line, header_raw, str(exc)))
        return
    if isinstance(item, RecordError):
        page.errors.append(item)
    else:
        page.papers.append(item)


def parse_oai_pmh(data: bytes, source: str = "oai-pmh") -> OaiPage:
    """Parse one OAI-PMH response (see the module docstring for the policy)."""
    root = parse_xml(data, source)
    if root.tag != f"{{{OAI}}}OAI-PMH":
        raise DocumentError(source, f"not an OAI-PMH response (root {root.tag!r})", line=1)
    errors = root.findall("o:error", _NS)
    if errors:
        codes = [(e.get("code") or "error", clean_text(e.text or "")) for e in errors]
        for code, message in codes:
            if code != "noRecordsMatch":
                raise UpstreamError(code, message or code)
        return OaiPage(total=0)
    container = root.find("o:ListRecords", _NS)
    if container is None:
        container = root.find("o:GetRecord", _NS)
    if container is None:
        raise DocumentError(source, "neither ListRecords nor GetRecord in the response", line=1)
    page = OaiPage()
    for record in container.iterfind("o:record", _NS):
        _record(record, source, page)
    token = container.find("o:resumptionToken", _NS)
    if token is not None:
        page.resumption_token = (token.text or "").strip() or None
        page.total = _int(token.get("completeListSize"))
        page.start = _int(token.get("cursor"))
    return page
