"""Category expressions and the day listings built on them, shared by the pages and the API.

An expression names the lists to read and the categories to drop:

    cs.AI,cs.CL          the union of both lists (`+` means the same as `,`)
    cs.AI+cs.LG-cs.CY    the union, minus every paper that is also in cs.CY
    cs-cs.CY             an archive expands to its categories

Ids are canonicalised through the taxonomy (cs.NA → math.NA, any case). Because arXiv ids
contain hyphens ("hep-th", "cond-mat.str-el"), a `-` is an operator only where the text
before it is a complete category: the longest known id wins.

A day listing shows each paper once, under its best announcement kind across the selected
lists (new > cross > replace > replace-cross), in three sections: new, cross-lists and
replacements. `parse_expression` is pure; the other functions read the store. A paper's
card and detail add what the derived artifacts hold (its TL;DR, its thumbnail).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from app.artifacts.summaries import shown_tldrs
from app.artifacts.thumbnails import shown_on_cards
from app.db.models import (
    Announcement,
    Paper,
    PaperCategory,
    PaperClicks,
    PaperLink,
    PaperRevision,
    PaperVersion,
    Summary,
    Thumbnail,
    Venue,
    VenuePaper,
)
from app.db.queries import get_paper
from app.db.statements import chunks
from app.ingest.revisions import FieldChange
from app.ingest.revisions import changes as text_changes
from app.taxonomy import get_taxonomy

announcements = Announcement.__table__
papers = Paper.__table__
venue_papers = VenuePaper.__table__
paper_categories = PaperCategory.__table__
paper_clicks = PaperClicks.__table__
paper_links = PaperLink.__table__
venues = Venue.__table__
revisions = PaperRevision.__table__
paper_versions = PaperVersion.__table__
# What the ML pool writes after a day is stored and a card shows: part of a page's version.
_CARD_ARTIFACTS = (Summary.__table__, Thumbnail.__table__)


def _among(
    conn: Connection, column: sa.ColumnElement[str], ids: Sequence[str]
) -> sa.ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL as `= ANY(array)`: one parameter instead of one per
    id, the same index scan, a quarter less time for a day's 200 ids (the statement is
    neither rendered with 200 casts nor parsed again for each request)."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(ids), type_=sa.ARRAY(sa.String)))
    return column.in_(ids)


def _artifacts_written(ids: sa.Select[Any] | list[str]) -> list[sa.ScalarSelect[Any]]:
    """The newest TL;DR and thumbnail written for these papers (one scalar each)."""
    return [
        sa.select(sa.func.max(t.c.created_at)).where(t.c.arxiv_id.in_(ids)).scalar_subquery()
        for t in _CARD_ARTIFACTS
    ]


def _venues_imported() -> sa.ScalarSelect[Any]:
    """The newest venue import: a card's venue badge links to its venue's page once that
    list is imported, so every page version showing cards follows it."""
    return sa.select(sa.func.max(venues.c.imported_at)).scalar_subquery()


ListingSort = Literal["order", "popularity", "keywords"]
SORTS: tuple[ListingSort, ...] = ("order", "popularity", "keywords")

KINDS = ("new", "cross", "replace", "replace-cross")
REPLACE_KINDS = frozenset({"replace", "replace-cross"})
_KIND_RANK = {k: i for i, k in enumerate(KINDS)}
# (section key, heading, kinds it holds)
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("new", "New submissions", ("new",)),
    ("cross", "Cross-lists", ("cross",)),
    ("replace", "Replacements", ("replace", "replace-cross")),
)

MAX_EXPRESSION_CHARS = 500
MAX_KEYWORDS = 20
_PIECES = re.compile(r"[,+\s]+")
_SHOWN = 60


class InvalidExpression(ValueError):
    """The text is not a category expression; the message says why, for the reader."""


@dataclass(frozen=True, slots=True)
class CategoryExpr:
    include: frozenset[str]  # canonical categories whose lists are read
    exclude: frozenset[str]  # papers in any of these are dropped
    # The canonical tokens as written (archives stay archives), for URLs and titles.
    terms: tuple[tuple[bool, str], ...] = field(default=(), compare=False)

    def canonical(self) -> str:
        """E.g. "cs.AI+cs.LG-cs.CY": includes first, then exclusions, in the order given."""
        inc = "+".join(t for neg, t in self.terms if not neg)
        exc = "".join(f"-{t}" for neg, t in self.terms if neg)
        return inc + exc


def _canonical_token(token: str) -> str | None:
    """The canonical spelling of an archive or category token, else None."""
    tax = get_taxonomy()
    arch = tax.archives.get(token) or tax.archives.get(token.casefold())
    if arch is not None and tax.expand(arch.id):
        return arch.id
    return tax.canonical(token)


def _split_piece(piece: str) -> list[tuple[bool, str]]:
    """ "cs.LG-cs.CY" → [(False, "cs.LG"), (True, "cs.CY")]; longest known id first, so
    "hep-th-hep-ph" is hep-th minus hep-ph and "cond-mat.str-el" stays whole."""
    parts = piece.split("-")
    out: list[tuple[bool, str]] = []
    i = 0
    negated = False
    if parts[0] == "":  # a leading "-": the piece is an exclusion
        negated, i = True, 1
    while i < len(parts):
        if parts[i] == "":
            raise InvalidExpression(f"empty category in {_show(piece)}")
        for j in range(len(parts), i, -1):
            canon = _canonical_token("-".join(parts[i:j]))
            if canon is not None:
                out.append((negated, canon))
                i, negated = j, True
                break
        else:
            raise InvalidExpression(f"unknown category {_show('-'.join(parts[i:]))}")
    return out


def _show(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "…")


def parse_expression(text: str) -> CategoryExpr:
    """Parse "cs.AI+cs.LG-cs.CY" (see the module docstring). Raises InvalidExpression."""
    if not isinstance(text, str):
        raise InvalidExpression("a category expression must be text")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise InvalidExpression(f"category expression longer than {MAX_EXPRESSION_CHARS} chars")
    pieces = [p for p in _PIECES.split(text.strip()) if p]
    if not pieces:
        raise InvalidExpression("empty category expression: name at least one category")
    terms: dict[tuple[bool, str], None] = {}
    for piece in pieces:
        for term in _split_piece(piece):
            terms[term] = None
    tax = get_taxonomy()
    include: set[str] = set()
    exclude: set[str] = set()
    for negated, token in terms:
        (exclude if negated else include).update(tax.expand(token))
    include -= exclude
    if not include:
        raise InvalidExpression(
            f"{_show(text)} selects no category: name at least one list to include"
        )
    return CategoryExpr(frozenset(include), frozenset(exclude), tuple(terms))


# --- queries ---------------------------------------------------------------------------


def _listed(expr: CategoryExpr) -> list[sa.ColumnElement[bool]]:
    """Announcement rows in the included lists whose paper is in no excluded category."""
    where: list[sa.ColumnElement[bool]] = [announcements.c.category.in_(sorted(expr.include))]
    if expr.exclude:
        where.append(
            ~sa.exists().where(
                paper_categories.c.arxiv_id == announcements.c.arxiv_id,
                paper_categories.c.category.in_(sorted(expr.exclude)),
            )
        )
    return where


def latest_day(conn: Connection, expr: CategoryExpr) -> date | None:
    return conn.scalar(sa.select(sa.func.max(announcements.c.day)).where(*_listed(expr)))


def previous_day(conn: Connection, expr: CategoryExpr, day: date) -> date | None:
    """The latest stored day before `day` with papers for `expr`."""
    return conn.scalar(
        sa.select(sa.func.max(announcements.c.day)).where(*_listed(expr), announcements.c.day < day)
    )


def next_day(conn: Connection, expr: CategoryExpr, day: date) -> date | None:
    """The earliest stored day after `day` with papers for `expr`."""
    return conn.scalar(
        sa.select(sa.func.min(announcements.c.day)).where(*_listed(expr), announcements.c.day > day)
    )


def days_with_counts(
    conn: Connection, expr: CategoryExpr, *, since: date | None = None
) -> list[tuple[date, int]]:
    """(day, distinct papers) for every stored day with papers, oldest first."""
    where = _listed(expr)
    if since is not None:
        where.append(announcements.c.day >= since)
    rows = conn.execute(
        sa.select(announcements.c.day, sa.func.count(sa.distinct(announcements.c.arxiv_id)))
        .where(*where)
        .group_by(announcements.c.day)
        .order_by(announcements.c.day)
    )
    return [(d, n) for d, n in rows]


@dataclass(slots=True)
class PaperCard:
    """What a paper card shows; also the JSON the API can return (`to_json`)."""

    arxiv_id: str
    title: str
    authors: list[str]
    abstract: str
    primary_category: str
    categories: list[str]
    comments: str | None = None
    version: int | None = None
    journal_ref: str | None = None
    doi: str | None = None
    first_submitted_at: datetime | None = None
    last_updated_at: datetime | None = None
    announced_on: date | None = None
    sort_date: date | None = None
    changed_at: datetime | None = None
    # Set in a day listing: the paper's best kind there and its place in the list.
    kind: str | None = None
    position: int | None = None
    clicks: int = 0
    keyword_hits: list[str] = field(default_factory=list)
    # A replaced paper (`add_changes`): the version stored before this one, and how its text
    # differs from that version's (app.ingest.revisions); `changes` None when that text was
    # never seen here, [] when it is the same.
    previous_version: int | None = None
    changes: list[FieldChange] | None = None
    # The TL;DR shown (app.artifacts.summaries.shown_tldrs): a linked venue paper's, else the ML
    # pool's; for the pool's, the model that wrote it and the paper version it summarised.
    tldr: str | None = None
    tldr_model: str | None = None
    tldr_paper_version: int | None = None
    # The stored thumbnail's URL (app.artifacts.thumbnails), when the ML pool made one, and
    # its source: "pdf" (the first page) or "generated" (a placeholder).
    thumbnail_url: str | None = None
    thumbnail_source: str | None = None
    # Badges (app.ingest.links, stored with the paper): code, data and project links, the
    # venue it was accepted at, and that venue's page when its list is imported here.
    has_code: bool = False
    links: list[dict[str, str]] = field(default_factory=list)
    venue: str | None = None
    venue_url: str | None = None

    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.arxiv_id}"

    @property
    def tldr_stale(self) -> bool:
        """A machine TL;DR written for another version of the paper (shown, with a note)."""
        return self.tldr_model is not None and self.tldr_paper_version != self.version

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if hasattr(value, "isoformat") else value
        out["abs_url"], out["pdf_url"] = self.abs_url, self.pdf_url
        out["tldr_stale"] = self.tldr_stale
        out["changes"] = None if self.changes is None else [c.to_json() for c in self.changes]
        return out


_CARD_COLUMNS = (
    papers.c.arxiv_id,
    papers.c.title,
    papers.c.authors,
    papers.c.abstract,
    papers.c.primary_category,
    papers.c.categories,
    papers.c.comments,
    papers.c.version,
    papers.c.journal_ref,
    papers.c.doi,
    papers.c.first_submitted_at,
    papers.c.last_updated_at,
    papers.c.announced_on,
    papers.c.sort_date,
    papers.c.changed_at,
)


def paper_cards(conn: Connection, ids: Sequence[str]) -> dict[str, PaperCard]:
    """Cards for the stored papers among `ids` (normalised ids without version)."""
    out: dict[str, PaperCard] = {}
    for chunk in chunks(list(dict.fromkeys(ids))):
        cards = sa.select(*_CARD_COLUMNS).where(_among(conn, papers.c.arxiv_id, chunk))
        for row in conn.execute(cards):
            data = row._asdict()
            data["authors"] = list(data["authors"] or [])
            data["categories"] = list(data["categories"] or [])
            out[row.arxiv_id] = PaperCard(**data)
        for arxiv_id, shown in shown_tldrs(conn, chunk).items():
            if card := out.get(arxiv_id):
                card.tldr, card.tldr_model = shown.text, shown.model
                card.tldr_paper_version = shown.paper_version
        for arxiv_id, thumb in shown_on_cards(conn, chunk).items():
            if card := out.get(arxiv_id):
                card.thumbnail_url, card.thumbnail_source = thumb.url, thumb.source
        _add_badges(conn, out, chunk)
    return out


def _add_badges(conn: Connection, cards: dict[str, PaperCard], ids: Sequence[str]) -> None:
    """Fill the cards' badges from `paper_links` (one primary-key probe per paper), with the
    venue page when a venue list of that name is imported."""
    rows = conn.execute(
        sa.select(
            paper_links.c.arxiv_id,
            paper_links.c.has_code,
            paper_links.c.links,
            paper_links.c.venue,
            venues.c.name,
        )
        .select_from(paper_links.outerjoin(venues, venues.c.name == paper_links.c.venue_key))
        .where(_among(conn, paper_links.c.arxiv_id, ids))
    )
    for arxiv_id, has_code, links, venue, held in rows:
        if card := cards.get(arxiv_id):
            card.has_code, card.links, card.venue = bool(has_code), list(links or []), venue
            card.venue_url = f"/venue/{held}" if held else None


def paper_detail(conn: Connection, arxiv_id: str) -> dict[str, Any] | None:
    """The store's view of one paper (`app.db.queries.get_paper`) with the TL;DR a card
    shows: its text, the model that wrote it, the paper version it was written from, and
    whether it is stale. None when the paper is not stored."""
    paper = get_paper(conn, arxiv_id)
    if paper is None:
        return None
    shown = shown_tldrs(conn, [arxiv_id]).get(arxiv_id)
    paper["tldr"] = shown.text if shown else None
    paper["tldr_model"] = shown.model if shown else None
    paper["tldr_paper_version"] = shown.paper_version if shown else None
    paper["tldr_stale"] = bool(shown and shown.stale(paper["version"]))
    return paper


def announcement_history(conn: Connection, arxiv_id: str) -> list[tuple[date, str, str]]:
    """(day, category, kind) for every list the paper was announced in, oldest first."""
    rows = conn.execute(
        sa.select(announcements.c.day, announcements.c.category, announcements.c.kind)
        .where(announcements.c.arxiv_id == arxiv_id)
        .order_by(announcements.c.day, announcements.c.category)
    )
    return [(d, c, k) for d, c, k in rows]


def add_changes(conn: Connection, cards: Iterable[PaperCard]) -> None:
    """Say what changed for each card whose paper a newer version replaced: the newest text
    stored for an earlier version (`paper_revisions`) and its word-level diff against the
    current one. A replacement (kind replace / replace-cross) whose earlier text was never
    seen here gets the version it replaced from the version history, and `changes` None."""
    wanted = {c.arxiv_id: c for c in cards if c.version}
    if not wanted:
        return
    earlier: dict[str, dict[str, Any]] = {}
    known: dict[str, list[int]] = {}
    columns = (
        revisions.c.arxiv_id,
        revisions.c.version,
        revisions.c.title,
        revisions.c.authors,
        revisions.c.abstract,
        revisions.c.comments,
        revisions.c.journal_ref,
    )
    for chunk in chunks(list(wanted)):
        rows = conn.execute(
            sa.select(*columns)
            .where(_among(conn, revisions.c.arxiv_id, chunk))
            .order_by(revisions.c.version)
        )
        for row in rows:
            if row.version < (wanted[row.arxiv_id].version or 0):
                earlier[row.arxiv_id] = row._asdict()  # the newest one below wins
        replaced = [i for i in chunk if i not in earlier and wanted[i].kind in REPLACE_KINDS]
        if replaced:
            history = conn.execute(
                sa.select(paper_versions.c.arxiv_id, paper_versions.c.version).where(
                    _among(conn, paper_versions.c.arxiv_id, replaced)
                )
            )
            for arxiv_id, number in history:
                known.setdefault(arxiv_id, []).append(number)
    for arxiv_id, card in wanted.items():
        current = card.version or 0
        if (old := earlier.get(arxiv_id)) is not None:
            card.previous_version = old["version"] or None  # 0: a version no source named
            card.changes = text_changes(old, {f: getattr(card, f) for f in old})
        elif card.kind in REPLACE_KINDS and current > 1:
            below = [v for v in known.get(arxiv_id, []) if v < current]
            card.previous_version = max(below, default=current - 1)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One version of a paper in its history: when it was submitted, its size, and whether
    its text is stored here (the current one's always is)."""

    version: int
    submitted_at: datetime | None
    size: str | None
    text_seen: bool


def version_history(conn: Connection, arxiv_id: str) -> list[VersionInfo]:
    """Every version a source reported for the paper, oldest first."""
    stored = sa.select(revisions.c.version).where(revisions.c.arxiv_id == arxiv_id)
    seen = set(conn.scalars(stored))
    seen.add(conn.scalar(sa.select(papers.c.version).where(papers.c.arxiv_id == arxiv_id)))
    rows = conn.execute(
        sa.select(paper_versions.c.version, paper_versions.c.submitted_at, paper_versions.c.size)
        .where(paper_versions.c.arxiv_id == arxiv_id)
        .order_by(paper_versions.c.version)
    )
    return [VersionInfo(v, at, size, v in seen) for v, at, size in rows]


class InvalidKinds(ValueError):
    """A kind filter naming something that is not an announcement kind."""


def parse_kinds(raw: str | Iterable[str]) -> frozenset[str]:
    """ "new,cross" or ["new", "cross"] → the announcement kinds to keep; "replace" keeps
    replace-cross too (both are in the replacements section). Raises InvalidKinds."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    words = [w.strip().casefold() for item in items for w in item.split(",") if w.strip()]
    unknown = [w for w in words if w not in _KIND_RANK]
    if unknown:
        raise InvalidKinds(
            f"unknown kind {_show(unknown[0])}: use any of {', '.join(KINDS)}, comma-separated"
        )
    if not words:
        raise InvalidKinds(f"name at least one kind: {', '.join(KINDS)}")
    kinds = set(words)
    if "replace" in kinds:
        kinds.add("replace-cross")
    return frozenset(kinds)


def click_counts(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    """PDF + summary clicks per paper (papers never clicked are absent)."""
    out: dict[str, int] = {}
    for chunk in chunks(list(ids)):
        rows = conn.execute(
            sa.select(paper_clicks.c.arxiv_id, paper_clicks.c.pdf + paper_clicks.c.summary).where(
                _among(conn, paper_clicks.c.arxiv_id, chunk)
            )
        )
        out.update({a: int(n or 0) for a, n in rows})
    return out


class InvalidFilter(ValueError):
    """A listing's `has_code` or `replacements` value that means nothing; says which."""


#: `has_code=1` keeps only the papers that link their code (app.ingest.links).
_CODE_ONLY = {"": False, "0": False, "false": False, "1": True, "true": True}
#: `replacements=hide` leaves the replacements section out.
_HIDE_REPLACEMENTS = {"": False, "show": False, "hide": True}
WITHOUT_REPLACEMENTS = frozenset({"new", "cross"})


def parse_code_only(raw: str) -> bool:
    """ "1"/"true" → only papers with a code link; ""/"0"/"false" → every paper. Raises
    InvalidFilter."""
    value = _CODE_ONLY.get(raw.strip().lower())
    if value is None:
        raise InvalidFilter(f"has_code must be 1 or 0, not {raw[:40]!r}")
    return value


def parse_hide_replacements(raw: str) -> bool:
    """ "hide" → leave replacements out; ""/"show" → keep them. Raises InvalidFilter."""
    value = _HIDE_REPLACEMENTS.get(raw)
    if value is None:
        raise InvalidFilter(f"replacements must be show or hide, not {raw[:40]!r}")
    return value


def parse_keywords(raw: str | Iterable[str]) -> list[str]:
    """ "a, b,,c" or ["a", "b"] → distinct, lower-cased, non-empty keywords (at most 20)."""
    items = raw.split(",") if isinstance(raw, str) else raw
    words = [" ".join(w.split()).casefold() for w in items]
    return list(dict.fromkeys(w for w in words if w))[:MAX_KEYWORDS]


def keyword_hits(card: PaperCard, keywords: Sequence[str]) -> list[str]:
    """The keywords found in the title or abstract, each at the start of a word (so
    "transformer" also matches "transformers"), case-insensitively."""
    text = f"{card.title}\n{card.abstract}".casefold()
    return [k for k in keywords if re.search(r"(?<!\w)" + re.escape(k), text)]


@dataclass(slots=True)
class Section:
    key: str  # new | cross | replace
    title: str
    papers: list[PaperCard]

    @property
    def count(self) -> int:
        return len(self.papers)


@dataclass(slots=True)
class DayListing:
    expr: CategoryExpr
    day: date
    sections: list[Section]
    sort: ListingSort = "order"
    keywords: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(s.count for s in self.sections)

    def count(self, key: str) -> int:
        return next((s.count for s in self.sections if s.key == key), 0)

    @property
    def summary(self) -> str:
        """E.g. "132 papers, 87 new, 30 cross-lists, 15 replacements"."""
        n = self.total
        parts = [f"{n} paper{'s' if n != 1 else ''}", f"{self.count('new')} new"]
        if self.count("cross"):
            parts.append(f"{self.count('cross')} cross-lists")
        if self.count("replace"):
            parts.append(f"{self.count('replace')} replacements")
        return ", ".join(parts)

    @property
    def papers(self) -> list[PaperCard]:
        return [p for s in self.sections for p in s.papers]


def day_listing(
    conn: Connection,
    expr: CategoryExpr,
    day: date,
    *,
    sort: ListingSort = "order",
    keywords: Sequence[str] = (),
    kinds: Collection[str] | None = None,
    has_code: bool | None = None,
) -> DayListing:
    """The day's papers for `expr`, each once, in sections. Sorting applies inside each
    section; ties keep announcement order (position, then id). `kinds` keeps only the papers
    whose kind there (their best one) is among them; replacements say what changed.
    `has_code` keeps only the papers with (True) or without (False) a code link."""
    best: dict[str, tuple[int, int, str]] = {}  # id → (kind rank, position, kind)
    rows = conn.execute(
        sa.select(announcements.c.arxiv_id, announcements.c.kind, announcements.c.position).where(
            *_listed(expr), announcements.c.day == day
        )
    )
    for arxiv_id, kind, position in rows:
        key = (_KIND_RANK.get(kind, len(KINDS)), position if position is not None else 1 << 30)
        held = best.get(arxiv_id)
        if held is None or key < held[:2]:
            best[arxiv_id] = (*key, kind)
    if kinds is not None:
        best = {i: held for i, held in best.items() if held[2] in kinds}
    cards = paper_cards(conn, list(best))
    if has_code is not None:
        cards = {i: c for i, c in cards.items() if c.has_code == has_code}
    if sort == "popularity":
        clicks = click_counts(conn, list(cards))
    words = parse_keywords(keywords) if sort == "keywords" or keywords else []
    for arxiv_id, card in cards.items():
        _rank, position, kind = best[arxiv_id]
        card.kind = kind
        card.position = None if position == 1 << 30 else position
        if sort == "popularity":
            card.clicks = clicks.get(arxiv_id, 0)
        if words:
            card.keyword_hits = keyword_hits(card, words)
    add_changes(conn, [c for c in cards.values() if c.kind in REPLACE_KINDS])

    def order(card: PaperCard) -> tuple[Any, ...]:
        base = (best[card.arxiv_id][1], card.arxiv_id)
        if sort == "popularity":
            return (-card.clicks, *base)
        if sort == "keywords":
            return (-len(card.keyword_hits), *base)
        return base

    sections = []
    for section, title, kinds in SECTIONS:
        members = sorted((c for c in cards.values() if c.kind in kinds), key=order)
        sections.append(Section(section, title, members))
    return DayListing(expr, day, sections, sort=sort, keywords=words)


def papers_version(conn: Connection, ids: Sequence[str]) -> str | None:
    """A cheap version of a page that shows these papers' cards: their newest change and
    newest TL;DR and thumbnail (None when none is stored)."""
    wanted = list(ids)
    changed, *written = conn.execute(
        sa.select(
            sa.select(sa.func.max(papers.c.changed_at))
            .where(papers.c.arxiv_id.in_(wanted))
            .scalar_subquery(),
            *_artifacts_written(wanted),
            _venues_imported(),
        )
    ).one()
    if changed is None:
        return None
    return f"{len(wanted)}|{changed}|" + "|".join(str(w) for w in written)


def paper_page_version(conn: Connection, ids: Sequence[str]) -> str | None:
    """A cheap version of a page showing these papers with their announcement history, in
    one query: None unless every id is stored; else it changes whenever the page could
    (a paper's metadata, its lists, its TL;DR or thumbnail, a venue TL;DR linked to it)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return None
    # One list parameter for every subquery: expanding seven lists would cost more than
    # the query itself.
    listed: sa.BindParameter[list[str]] = sa.bindparam("ids", wanted, expanding=True)

    def scalar(column: Any, table: sa.Table, *where: Any) -> sa.ScalarSelect[Any]:
        return (
            sa.select(column)
            .select_from(table)
            .where(table.c.arxiv_id.in_(listed), *where)
            .scalar_subquery()
        )

    row = conn.execute(
        sa.select(
            scalar(sa.func.count(), papers),
            scalar(sa.func.max(papers.c.changed_at), papers),
            scalar(sa.func.count(), announcements),
            scalar(sa.func.max(announcements.c.day), announcements),
            scalar(sa.func.count(), venue_papers, venue_papers.c.tldr.is_not(None)),
            *(scalar(sa.func.max(t.c.created_at), t) for t in _CARD_ARTIFACTS),
            _venues_imported(),
            # The version history a page lists can grow without the paper row changing.
            scalar(sa.func.count(), paper_versions),
        )
    ).one()
    if row[0] != len(wanted):
        return None
    return "|".join(str(v) for v in row)


def listing_version(conn: Connection, expr: CategoryExpr, day: date) -> str:
    """A cheap version of a day's listing page, in one query: changes whenever the page
    could (the day's entries and their papers' metadata, their TL;DRs, thumbnails and
    linked venue TL;DRs, and the newest day, which moves the prev/next links and the
    calendar)."""
    in_lists = announcements.c.category.in_(sorted(expr.include | expr.exclude))
    on_day = (announcements.c.day == day) & in_lists
    entries = announcements.join(papers, papers.c.arxiv_id == announcements.c.arxiv_id)
    # TL;DRs and thumbnails arrive after the day is stored: a new one must make a new page.
    listed = sa.select(announcements.c.arxiv_id).where(on_day)
    row = conn.execute(
        sa.select(
            sa.select(sa.func.count()).select_from(entries).where(on_day).scalar_subquery(),
            sa.select(sa.func.max(papers.c.changed_at))
            .select_from(entries)
            .where(on_day)
            .scalar_subquery(),
            sa.select(sa.func.max(announcements.c.day)).where(in_lists).scalar_subquery(),
            *_artifacts_written(listed),
            sa.select(sa.func.count())
            .select_from(venue_papers)
            .where(venue_papers.c.arxiv_id.in_(listed), venue_papers.c.tldr.is_not(None))
            .scalar_subquery(),
            _venues_imported(),
        )
    ).one()
    return "|".join(str(v) for v in row)
