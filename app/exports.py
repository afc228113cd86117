"""Paper lists as files a reference manager imports: BibTeX, RIS, CSL-JSON and Markdown.
Pure formatting, no I/O: the web edge gathers the list (stars, a search, a day, a venue)
and hands over `Work`s, made from stored papers' cards or from venue papers.

arXiv keeps titles and abstracts as TeX source (`$x^2$`, `\\emph{…}`, accents already folded
to Unicode by the importer), so BibTeX keeps math and commands and escapes only what TeX
would otherwise misread (`%`, `&`, `#`, `_`, a lone `$`) and any brace without its partner,
which would end a BibTeX value early. The other formats carry the text as stored, on one
line per value: no newline can start a new RIS tag (`ER  -` inside an abstract stays
inside it) and no Markdown line can start a heading or a block.

A preprint is what Zotero's arXiv translator makes of it: CSL type `article`, `publisher`
arXiv (Zotero's "repository") and `number` `arXiv:<id>` (its "archive ID"); the DOI is the
published version's when arXiv knows it, else arXiv's own (10.48550/arXiv.<id>).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from app.listing import PaperCard

Format = Literal["bibtex", "ris", "csl-json", "markdown"]


@dataclass(frozen=True, slots=True)
class ExportFormat:
    name: Format
    extension: str  # the download's file name ends so
    media_type: str
    label: str  # what a page's link says


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("bibtex", "bib", "application/x-bibtex; charset=utf-8", "BibTeX"),
        ExportFormat("ris", "ris", "application/x-research-info-systems; charset=utf-8", "RIS"),
        ExportFormat(
            "csl-json",
            "csl.json",
            "application/vnd.citationstyles.csl+json; charset=utf-8",
            "CSL-JSON",
        ),
        ExportFormat("markdown", "md", "text/markdown; charset=utf-8", "Markdown"),
    )
}
BY_EXTENSION = {f.extension: f for f in FORMATS.values()}


@dataclass(slots=True)
class Work:
    """One entry of an export: an arXiv paper (`arxiv_id` set) or a venue paper that is
    not on arXiv (`venue` set, no id)."""

    title: str
    authors: list[str]
    abstract: str = ""
    arxiv_id: str | None = None
    version: int | None = None
    primary_category: str | None = None
    categories: list[str] = field(default_factory=list)
    comments: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    submitted: date | None = None  # v1's date (a preprint's "issued")
    url: str | None = None
    tldr: str | None = None
    venue: str | None = None  # e.g. "iclr2018": the venue list it came from
    venue_status: str | None = None  # e.g. "Poster"

    @property
    def year(self) -> int | None:
        if self.submitted:
            return self.submitted.year
        found = re.search(r"(19|20)\d\d", self.venue or "")
        return int(found.group()) if found else None

    @property
    def preprint(self) -> bool:
        return self.arxiv_id is not None

    @property
    def doi_or_arxiv(self) -> str | None:
        if self.doi:
            return self.doi
        return f"10.48550/arXiv.{self.arxiv_id}" if self.arxiv_id else None


def from_card(card: PaperCard, *, venue: str | None = None, status: str | None = None) -> Work:
    submitted = card.first_submitted_at.date() if card.first_submitted_at else card.sort_date
    return Work(
        title=card.title,
        authors=list(card.authors),
        abstract=card.abstract,
        arxiv_id=card.arxiv_id,
        version=card.version,
        primary_category=card.primary_category,
        categories=list(card.categories),
        comments=card.comments,
        journal_ref=card.journal_ref,
        doi=card.doi,
        submitted=submitted,
        url=card.abs_url,
        tldr=card.tldr,
        venue=venue,
        venue_status=status,
    )


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


# --- names --------------------------------------------------------------------------------

_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "v"})
# Words that make an author string a group, not a person: never split into given/family.
_GROUP_WORDS = re.compile(
    r"\b(collaboration|consortium|team|group|project|committee|initiative|network|"
    r"laboratory|institute|university|inc|ltd)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Name:
    given: str = ""
    family: str = ""  # with its particle ("van der Waals"), as Zotero keeps last names
    suffix: str = ""
    literal: str = ""  # a group or a one-word name, kept whole


def split_name(raw: str) -> Name:
    """ "Jean-Baptiste de la Fontaine" → given "Jean-Baptiste", family "de la Fontaine" (as
    BibTeX reads names: lower-case words before the last word are its particle); "Smith,
    John" as written; "Plato", "The ATLAS Collaboration", "王小明" kept whole."""
    text = _one_line(raw)
    if not text:
        return Name(literal="")
    if _GROUP_WORDS.search(text) or re.search(r"\band\b", text):
        return Name(literal=text)
    suffix = ""
    if "," in text:
        before, _, rest = text.partition(",")
        if rest.strip().casefold() in _SUFFIXES:  # "John Smith, Jr."
            text, suffix = before.strip(), rest.strip()
        else:  # "Smith, John" or "Smith, John, Jr."
            given, _, suffix = rest.partition(",")
            if before.strip() and given.strip():
                return Name(given=given.strip(), family=before.strip(), suffix=suffix.strip())
            suffix = ""
    words = text.split(" ")
    if not suffix and len(words) > 2 and words[-1].casefold() in _SUFFIXES:
        suffix = words.pop()
    if len(words) == 1:
        return Name(literal=words[0], suffix=suffix)
    family_from = len(words) - 1
    while family_from > 1 and words[family_from - 1][:1].islower():
        family_from -= 1
    return Name(
        given=" ".join(words[:family_from]),
        family=" ".join(words[family_from:]),
        suffix=suffix,
    )


def _ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


_STOP_WORDS = frozenset({"the", "and", "for", "with", "from", "into", "towards", "toward", "via"})


def citation_key(work: Work) -> str:
    """E.g. "hopper2026compilers": first author's family name, year, first long title word
    (ASCII only, so every tool takes it)."""
    name = split_name(work.authors[0]) if work.authors else Name()
    surname = (name.family or name.literal).split(" ")[-1] if (name.family or name.literal) else ""
    words = (_ascii_word(w) for w in re.findall(r"\w+", re.sub(r"\$[^$]*\$", " ", work.title)))
    word = next((w for w in words if len(w) > 2 and w not in _STOP_WORDS), "")
    key = f"{_ascii_word(surname)[:24]}{work.year or ''}{word[:20]}"
    return key or (f"arxiv{_ascii_word(work.arxiv_id or '')}" if work.arxiv_id else "paper")


def citation_keys(works: Sequence[Work]) -> list[str]:
    """A key per work, unique within the file: repeats get a, b, … appended."""
    seen: dict[str, int] = {}
    taken: set[str] = set()
    out = []
    for work in works:
        base = citation_key(work)
        key = base
        while key in taken:
            n = seen.get(base, 0)
            seen[base] = n + 1
            key = base + _letters(n)
        taken.add(key)
        out.append(key)
    return out


def _letters(n: int) -> str:
    """0 → "a", 25 → "z", 26 → "aa"…"""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(97 + r) + out
    return out


# --- BibTeX -------------------------------------------------------------------------------

_MATH = re.compile(r"(?<!\\)\$\$[^$]+(?<!\\)\$\$|(?<!\\)\$[^$]+(?<!\\)\$")
_TEX_SPECIAL = re.compile(r"(?<!\\)([%&#_])")
_PERCENT = re.compile(r"(?<!\\)%")  # a comment to TeX, in math too
_LONE_DOLLAR = re.compile(r"(?<!\\)\$")
_CARET = re.compile(r"(?<!\\)\^")


def _escape_text(text: str) -> str:
    text = _TEX_SPECIAL.sub(r"\\\1", text)
    text = _LONE_DOLLAR.sub(r"\\$", text)
    return _CARET.sub(r"\\^{}", text)


def _balance_braces(text: str) -> str:
    """Every brace that has no partner becomes `\\textbraceleft{}` / `\\textbraceright{}`
    (with the backslash that escaped it, if any): BibTeX counts braces, escaped or not, and
    an unpaired one would end the value early or swallow the rest of the file."""
    unmatched: set[int] = set()
    opened: list[int] = []
    for i, ch in enumerate(text):
        if ch == "{":
            opened.append(i)
        elif ch == "}":
            if opened:
                opened.pop()
            else:
                unmatched.add(i)
    unmatched.update(opened)
    if not unmatched:
        return text
    out: list[str] = []
    for i, ch in enumerate(text):
        if i in unmatched:
            if out and out[-1] == "\\":
                out.pop()
            out.append("\\textbraceleft{}" if ch == "{" else "\\textbraceright{}")
        else:
            out.append(ch)
    return "".join(out)


def bibtex_text(text: str | None) -> str:
    """A field value for BibTeX: one line, math (`$…$`) and TeX commands kept, TeX's
    special characters outside math escaped, braces balanced."""
    line = _one_line(text)
    pieces: list[str] = []
    last = 0
    for m in _MATH.finditer(line):
        pieces.append(_escape_text(line[last : m.start()]))
        pieces.append(_PERCENT.sub(r"\\%", m.group()))
        last = m.end()
    pieces.append(_escape_text(line[last:]))
    out = _balance_braces("".join(pieces))
    # A backslash ending the value would escape the closing brace for TeX.
    return (
        out[:-1] + "\\textbackslash{}" if out.endswith("\\") and not out.endswith("\\\\") else out
    )


def bibtex_author(raw: str) -> str:
    """One name for an `author` list: groups and names holding the word "and" braced whole,
    so BibTeX neither splits nor reorders them."""
    name = split_name(raw)
    text = bibtex_text(raw)
    if (name.literal and " " in name.literal) or re.search(r"\band\b", text, re.IGNORECASE):
        return "{" + text + "}"
    return text


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def bibtex_entry(work: Work, key: str) -> str:
    """One entry: `@misc` with the arXiv eprint fields, or `@inproceedings` for a venue paper
    that is not on arXiv."""
    notes = []
    if work.venue:
        notes.append(" ".join(p for p in (work.venue, work.venue_status) if p))
    fields: list[tuple[str, str]] = [
        ("title", bibtex_text(work.title)),
        ("author", " and ".join(a for a in (bibtex_author(n) for n in work.authors) if a)),
    ]
    if not work.preprint and work.venue:
        fields.append(("booktitle", bibtex_text(work.venue)))
    fields.append(("year", str(work.year or "")))
    if work.preprint:
        fields += [
            ("eprint", work.arxiv_id or ""),
            ("archivePrefix", "arXiv"),
            ("primaryClass", work.primary_category or ""),
        ]
    fields += [
        ("doi", bibtex_text(work.doi_or_arxiv)),
        ("url", bibtex_text(work.url)),
        ("journal", bibtex_text(work.journal_ref)),
        ("note", bibtex_text("; ".join(notes))),
        ("comment", bibtex_text(work.comments)),
        ("abstract", bibtex_text(work.abstract)),
    ]
    lines = []
    for k, v in fields:
        if v:
            lines.append(f"  {k} = {{{v}}}")
        if k == "year" and work.submitted:  # BibTeX's month macro, unbraced: styles localise it
            lines.append(f"  month = {_MONTHS[work.submitted.month - 1]}")
    kind = "misc" if work.preprint or not work.venue else "inproceedings"
    return f"@{kind}{{{key},\n" + ",\n".join(lines) + "\n}\n"


def to_bibtex(works: Sequence[Work]) -> str:
    return "\n".join(bibtex_entry(w, k) for w, k in zip(works, citation_keys(works), strict=True))


# --- RIS ----------------------------------------------------------------------------------


def _ris_name(raw: str) -> str:
    name = split_name(raw)
    if name.literal:
        return name.literal
    return ", ".join(p for p in (name.family, name.given, name.suffix) if p)


def ris_record(work: Work, key: str) -> str:
    lines: list[tuple[str, str]] = [("TY", "UNPB" if work.preprint else "CPAPER"), ("ID", key)]
    lines.append(("TI", _one_line(work.title)))
    lines += [("AU", _ris_name(a)) for a in work.authors]
    if work.year:
        lines.append(("PY", str(work.year)))
    if work.submitted:
        lines.append(("DA", work.submitted.strftime("%Y/%m/%d/")))
    if work.preprint:
        lines += [("PB", "arXiv"), ("AN", f"arXiv:{work.arxiv_id}")]
        lines += [("KW", c) for c in work.categories]
    elif work.venue:
        lines.append(("T2", work.venue))
    lines += [
        ("DO", work.doi_or_arxiv or ""),
        ("UR", work.url or ""),
        ("JO", _one_line(work.journal_ref)),
        ("AB", _one_line(work.abstract)),
    ]
    if work.comments:
        lines.append(("N1", "Comments: " + _one_line(work.comments)))
    if work.venue and work.venue_status:
        lines.append(("N1", f"{work.venue}: {_one_line(work.venue_status)}"))
    body = "".join(f"{tag}  - {value}\r\n" for tag, value in lines if value)
    return body + "ER  - \r\n"


def to_ris(works: Sequence[Work]) -> str:
    keys = citation_keys(works)
    return "\r\n".join(ris_record(w, k) for w, k in zip(works, keys, strict=True))


# --- CSL-JSON -----------------------------------------------------------------------------


def csl_name(raw: str) -> dict[str, str]:
    name = split_name(raw)
    if name.literal:
        return {"literal": name.literal}
    out = {"family": name.family, "given": name.given}
    if name.suffix:
        out["suffix"] = name.suffix
    return out


def csl_item(work: Work, key: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": key,
        "type": "article" if work.preprint or not work.venue else "paper-conference",
        "title": _one_line(work.title),
        "author": [csl_name(a) for a in work.authors if a.strip()],
    }
    if work.submitted:
        d = work.submitted
        item["issued"] = {"date-parts": [[d.year, d.month, d.day]]}
    elif work.year:
        item["issued"] = {"date-parts": [[work.year]]}
    if work.abstract:
        item["abstract"] = _one_line(work.abstract)
    if work.preprint:
        item["publisher"] = "arXiv"
        item["number"] = f"arXiv:{work.arxiv_id}"
        if work.version:
            item["version"] = str(work.version)
        if work.categories:
            item["keyword"] = ", ".join(work.categories)
    elif work.venue:
        item["container-title"] = work.venue
        if work.venue_status:
            item["status"] = _one_line(work.venue_status)
    if doi := work.doi_or_arxiv:
        item["DOI"] = doi
    if work.url:
        item["URL"] = work.url
    notes = []
    if work.comments:
        notes.append("Comments: " + _one_line(work.comments))
    if work.journal_ref:
        notes.append("Journal reference: " + _one_line(work.journal_ref))
    if work.preprint and work.venue:
        notes.append(" ".join(p for p in (work.venue, work.venue_status) if p))
    if notes:
        item["note"] = "\n".join(notes)
    return item


def to_csl_json(works: Sequence[Work]) -> str:
    keys = citation_keys(works)
    items = [csl_item(w, k) for w, k in zip(works, keys, strict=True)]
    return json.dumps(items, ensure_ascii=False, indent=2) + "\n"


# --- Markdown -----------------------------------------------------------------------------

# The marks Markdown reads as inline markup mid-line (every value sits after a list marker
# or fixed text, so block syntax never starts); CommonMark takes a backslash before any
# ASCII punctuation as the literal mark, so `<script>` stays text. `$` is left alone:
# renderers with math show `$x^2$` as maths.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&!~|])")


def markdown_text(text: str | None) -> str:
    return _MD_SPECIAL.sub(r"\\\1", _one_line(text))


def _md_url(url: str) -> str:
    """A link destination: only http(s), with the characters that would end it encoded."""
    if not re.match(r"https?://", url):
        return ""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C")


def markdown_item(work: Work, n: int) -> str:
    title = markdown_text(work.title)
    url = _md_url(work.url or "")
    lines = [f"{n}. **[{title}]({url})**" if url else f"{n}. **{title}**"]
    meta = [markdown_text(", ".join(work.authors))]
    if work.submitted:
        meta.append(work.submitted.isoformat())
    if work.arxiv_id:
        cat = f" \\[{markdown_text(work.primary_category)}\\]" if work.primary_category else ""
        meta.append(f"arXiv:{markdown_text(work.arxiv_id)}{cat}")
    if work.venue:
        meta.append(markdown_text(" ".join(p for p in (work.venue, work.venue_status) if p)))
    lines.append("   " + " · ".join(m for m in meta if m))
    if work.tldr:
        lines.append("   TL;DR: " + markdown_text(work.tldr))
    if work.comments:
        lines.append("   Comments: " + markdown_text(work.comments))
    return "  \n".join(lines) + "\n"


def to_markdown(works: Sequence[Work], heading: str = "Papers") -> str:
    head = f"# {markdown_text(heading)}\n\n"
    return head + "\n".join(markdown_item(w, i) for i, w in enumerate(works, 1))


RENDERERS: dict[str, Callable[[Sequence[Work], str], str]] = {
    "bibtex": lambda works, _heading: to_bibtex(works),
    "ris": lambda works, _heading: to_ris(works),
    "csl-json": lambda works, _heading: to_csl_json(works),
    "markdown": to_markdown,
}


def render(fmt: str, works: Sequence[Work], heading: str = "Papers") -> str:
    """The file in `fmt` (a `FORMATS` key); KeyError for another."""
    return RENDERERS[fmt](works, heading)


def download_name(stem: str, fmt: str) -> str:
    """A safe file name: "papershelf-" + the stem's letters, digits and `.+-`, then the
    format's extension."""
    safe = re.sub(r"[^A-Za-z0-9.+-]+", "-", stem).strip("-.")[:80] or "papers"
    return f"papershelf-{safe}.{FORMATS[fmt].extension}"
