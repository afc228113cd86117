"""Writes of papers and venues (and their versions, categories, announcements, clicks). Every
write is an idempotent, batched upsert. Other tables have their own writers: fetch
bookkeeping in `app.db.runs`, derived artifacts (TL;DRs, thumbnails, FAQs, related
keywords) in `app.artifacts`; the full-text index is kept by `app.search`, which this module
asks to index the papers it inserts.

Rules for papers, on SQLite and PostgreSQL alike:
- a paper is keyed by its arXiv id without version;
- a record with a newer version replaces the metadata and extends the version history;
  one with an older version never overwrites a newer one (the SQL `WHERE` enforces this
  even against concurrent writers); a record with the same version rewrites the row only
  when its content differs, so importing the same data twice changes nothing;
- optional fields a source lacks (DOI, licence, comments, ...) never erase known values;
- before a newer version replaces a paper, the text the row held (title, abstract, authors,
  comments, journal ref) is kept in `paper_revisions` under its version, for the diff;
- each batch is one transaction: it lands whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, func, literal_column, select

from app.db.models import (
    Announcement,
    Paper,
    PaperCategory,
    PaperClicks,
    PaperLink,
    PaperRevision,
    PaperVersion,
    Venue,
    VenuePaper,
)
from app.db.statements import chunks, insert
from app.ingest.links import find_paper_links
from app.ingest.records import PaperRecord, VenuePaperRecord
from app.ingest.text import title_key
from app.search.backend import index_for

papers = Paper.__table__
versions_t = PaperVersion.__table__
categories_t = PaperCategory.__table__
announcements_t = Announcement.__table__
venues_t = Venue.__table__
venue_papers_t = VenuePaper.__table__
clicks_t = PaperClicks.__table__
revisions_t = PaperRevision.__table__
links_t = PaperLink.__table__

OPTIONAL = ("comments", "journal_ref", "doi", "license", "classes", "last_updated_at")
# Keeps a statement's bind parameters under SQLite's limit (32766) whatever the batch size.
IN_CHUNK = 900


@dataclass(slots=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    announcements: int = 0
    written_ids: list[str] = field(default_factory=list)

    def add(self, other: UpsertCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.announcements += other.announcements


def _rank(version: int | None) -> int:
    return version or 0


def _dedupe(records: Iterable[PaperRecord]) -> dict[str, PaperRecord]:
    """Keep one record per id: the highest version; on a tie the later one. Announcements of
    the dropped duplicates are kept so no listing entry is lost."""
    chosen: dict[str, PaperRecord] = {}
    for rec in records:
        prev = chosen.get(rec.arxiv_id)
        if prev is None:
            chosen[rec.arxiv_id] = rec
            continue
        keep, drop = (rec, prev) if _rank(rec.version) >= _rank(prev.version) else (prev, rec)
        keep.announcements = [*drop.announcements, *keep.announcements]
        keep.versions = [*drop.versions, *keep.versions]
        chosen[rec.arxiv_id] = keep
    return chosen


def _announced_on(rec: PaperRecord) -> date | None:
    return min((a.day for a in rec.announcements), default=None)


def _first_submitted(rec: PaperRecord) -> datetime | None:
    return rec.first_submitted_at or min(
        (v.submitted_at for v in rec.versions if v.submitted_at), default=None
    )


def _sort_date(announced: date | None, first: datetime | None, now: datetime) -> date:
    return announced or (first.date() if first else None) or now.date()


def _hash(rec: PaperRecord, announced: date | None) -> str:
    base = rec.content_hash()
    return base if announced is None else f"{base[:18]}{announced:%Y%m%d}"


# The paper upsert, in SQL that SQLite and PostgreSQL both accept. Written out rather than
# built with SQLAlchemy Core: at 2.5M rows the per-row compilation overhead dominated.
PAPER_COLUMNS = (
    "arxiv_id",
    "version",
    "title",
    "abstract",
    "authors",
    "primary_category",
    "categories",
    "classes",
    "comments",
    "journal_ref",
    "doi",
    "license",
    "first_submitted_at",
    "last_updated_at",
    "announced_on",
    "sort_date",
    "title_key",
    "content_hash",
    "stored_at",
    "changed_at",
)
JSON_COLUMNS = frozenset({"authors", "categories", "classes"})
_MERGED_DAY = (
    "CASE WHEN papers.announced_on IS NULL THEN excluded.announced_on"
    " WHEN excluded.announced_on IS NULL THEN papers.announced_on"
    " WHEN excluded.announced_on < papers.announced_on THEN excluded.announced_on"
    " ELSE papers.announced_on END"
)
# What a paper row may change, shared by the row-by-row upsert and the bulk merge
# (app.db.bulk), so both paths follow the same rules by construction.
PAPER_ON_CONFLICT = (
    "ON CONFLICT (arxiv_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in (
            "version",
            "title",
            "abstract",
            "authors",
            "primary_category",
            "categories",
            "title_key",
            "content_hash",
            "changed_at",
        )
    )
    + ", "
    + ", ".join(f"{c} = COALESCE(excluded.{c}, papers.{c})" for c in OPTIONAL)
    + ", first_submitted_at = COALESCE(papers.first_submitted_at, excluded.first_submitted_at)"
    + f", announced_on = {_MERGED_DAY}"
    + f", sort_date = COALESCE({_MERGED_DAY}, papers.sort_date)"
    + " WHERE COALESCE(excluded.version, 0) > COALESCE(papers.version, 0)"
    " OR (COALESCE(excluded.version, 0) = COALESCE(papers.version, 0)"
    " AND excluded.content_hash <> papers.content_hash)"
)
_PAPER_UPSERT = "INSERT INTO papers ({columns}) VALUES ({values}) " + PAPER_ON_CONFLICT
_CATEGORY_INSERT = (
    "INSERT INTO paper_categories (category, arxiv_id) VALUES ({p}, {p}) ON CONFLICT DO NOTHING"
)
VERSION_ON_CONFLICT = (
    "ON CONFLICT (arxiv_id, version) DO UPDATE SET"
    " submitted_at = COALESCE(paper_versions.submitted_at, excluded.submitted_at),"
    " size = COALESCE(paper_versions.size, excluded.size)"
    " WHERE (paper_versions.submitted_at IS NULL AND excluded.submitted_at IS NOT NULL)"
    " OR (paper_versions.size IS NULL AND excluded.size IS NOT NULL)"
)
_VERSION_UPSERT = (
    "INSERT INTO paper_versions (arxiv_id, version, submitted_at, size)"
    " VALUES ({p}, {p}, {p}, {p}) " + VERSION_ON_CONFLICT
)
# Before a newer version replaces a paper row, the text it held is kept as that version's
# revision (the "what changed" diff reads it). `{source}`/`{where}` pick the papers being
# replaced: one row per execution here, a join with the staged batch in app.db.bulk.
REVISION_COLUMNS = (
    "arxiv_id",
    "version",
    "title",
    "abstract",
    "authors",
    "comments",
    "journal_ref",
    "seen_at",
    "replaced_at",
)
REVISION_COPY = (
    f"INSERT INTO paper_revisions ({', '.join(REVISION_COLUMNS)})"
    " SELECT p.arxiv_id, COALESCE(p.version, 0), p.title, p.abstract, p.authors, p.comments,"
    " p.journal_ref, p.changed_at, {replaced_at} FROM papers p{source} WHERE {where}"
    " ON CONFLICT (arxiv_id, version) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in REVISION_COLUMNS[2:])
)
_ANNOUNCEMENT_INSERT = (
    "INSERT INTO announcements (category, day, arxiv_id, kind, position)"
    " VALUES ({p}, {p}, {p}, {p}, {p}) ON CONFLICT DO NOTHING"
)

# A paper's badges (app.ingest.links), derived from the text the paper row ends up holding.
LINK_COLUMNS = ("arxiv_id", "has_code", "links", "venue", "venue_key")
# An upsert: a paper this batch read as new may have been stored (with its badges) by a
# concurrent writer since (two categories' fetches cross-list it); the text just merged wins.
_LINK_INSERT = (
    "INSERT INTO paper_links (arxiv_id, has_code, links, venue, venue_key)"
    " VALUES ({p}, {p}, {links}, {p}, {p})"
    " ON CONFLICT (arxiv_id) DO UPDATE SET has_code = excluded.has_code,"
    " links = excluded.links, venue = excluded.venue, venue_key = excluded.venue_key"
)


class _Dialect:
    """Placeholder style and value conversion for raw DBAPI executemany."""

    def __init__(self, name: str) -> None:
        self.sqlite = name == "sqlite"
        if not self.sqlite and name != "postgresql":
            raise RuntimeError(f"unsupported database dialect {name!r}")
        p = "?" if self.sqlite else "%s"
        self.p = p
        values = ", ".join(
            f"CAST({p} AS json)" if c in JSON_COLUMNS and not self.sqlite else p
            for c in PAPER_COLUMNS
        )
        self.paper_upsert = _PAPER_UPSERT.format(columns=", ".join(PAPER_COLUMNS), values=values)
        self.category_insert = _CATEGORY_INSERT.format(p=p)
        self.version_upsert = _VERSION_UPSERT.format(p=p)
        self.announcement_insert = _ANNOUNCEMENT_INSERT.format(p=p)
        self.link_insert = _LINK_INSERT.format(
            links=p if self.sqlite else f"CAST({p} AS json)", p=p
        )
        self.revision_copy = REVISION_COPY.format(
            replaced_at=p,
            source="",
            where=f"p.arxiv_id = {p} AND COALESCE(p.version, 0) < {p}",
        )

    def ts(self, value: datetime | None) -> object:
        # SQLAlchemy's SQLite DateTime storage format (naive UTC), so ORM reads agree.
        if value is None or not self.sqlite:
            return value
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")

    def day(self, value: date | None) -> object:
        if value is None or not self.sqlite:
            return value
        return value.isoformat()


def _json(value: object) -> str | None:
    # Non-ASCII stays as it is (orjson does not escape), so FTS indexes "Łukasz", not "\\u0141".
    return None if value is None else orjson.dumps(value).decode()


@dataclass(slots=True)
class PreparedBatch:
    """A batch turned into plain tuples for executemany: all the per-record work, none of the
    database's. Cheap to pickle, so an import can prepare in one process and write in another."""

    dialect: str
    papers: list[tuple[Any, ...]]  # PAPER_COLUMNS order
    categories: dict[str, list[str]]
    versions: list[tuple[Any, ...]]
    announcements: list[tuple[Any, ...]]
    lines: list[int | None] = field(default_factory=list)  # each paper's source line
    # Each paper's badges row (LINK_COLUMNS order), when it has a link or a venue.
    links: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.papers)

    def split(self) -> list[PreparedBatch]:
        """One batch per paper, its versions and announcements with it: written one by one,
        a value the database refuses costs only its own paper."""
        versions: dict[str, list[tuple[Any, ...]]] = {}
        for row in self.versions:
            versions.setdefault(row[0], []).append(row)
        announced: dict[str, list[tuple[Any, ...]]] = {}
        for row in self.announcements:
            announced.setdefault(row[2], []).append(row)
        lines = self.lines or [None] * len(self.papers)
        return [
            PreparedBatch(
                dialect=self.dialect,
                papers=[row],
                categories={row[_ID]: self.categories[row[_ID]]},
                versions=versions.get(row[_ID], []),
                announcements=announced.get(row[_ID], []),
                lines=[line],
                links={row[_ID]: self.links[row[_ID]]} if row[_ID] in self.links else {},
            )
            for row, line in zip(self.papers, lines, strict=True)
        ]


_ID, _VERSION, _DIGEST = 0, 1, PAPER_COLUMNS.index("content_hash")
_CHANGED = PAPER_COLUMNS.index("changed_at")


def prepare(records: Iterable[PaperRecord], dialect: str) -> PreparedBatch:
    """Pure: dedupe a batch and build every row it will write (see `write`)."""
    d = _Dialect(dialect)
    batch = _dedupe(records)
    now = datetime.now(UTC)
    stamp = d.ts(now)
    paper_rows = []
    for arxiv_id, rec in batch.items():
        announced = _announced_on(rec)
        first = _first_submitted(rec)
        paper_rows.append(
            (
                arxiv_id,
                rec.version,
                rec.title,
                rec.abstract,
                _json(rec.authors),
                rec.primary_category,
                _json(rec.categories),
                _json(rec.classes or None),
                rec.comments,
                rec.journal_ref,
                rec.doi,
                rec.license,
                d.ts(first),
                d.ts(rec.last_updated_at),
                d.day(announced),
                d.day(_sort_date(announced, first, now)),
                title_key(rec.title),
                _hash(rec, announced),
                stamp,
                stamp,
            )
        )

    version_rows: dict[tuple[str, int], tuple[Any, ...]] = {}
    for rec in batch.values():
        for v in rec.versions:
            version_rows[(rec.arxiv_id, v.number)] = (
                rec.arxiv_id,
                v.number,
                d.ts(v.submitted_at),
                v.size,
            )
        if rec.version and (rec.arxiv_id, rec.version) not in version_rows:
            when = rec.last_updated_at if rec.version > 1 else rec.first_submitted_at
            version_rows[(rec.arxiv_id, rec.version)] = (
                rec.arxiv_id,
                rec.version,
                d.ts(when),
                None,
            )
        # Sources without a history (the query API) still say when v1 was submitted.
        if rec.version and rec.first_submitted_at and (rec.arxiv_id, 1) not in version_rows:
            version_rows[(rec.arxiv_id, 1)] = (rec.arxiv_id, 1, d.ts(rec.first_submitted_at), None)

    ann_rows = {
        (a.category, a.day, rec.arxiv_id): (
            a.category,
            d.day(a.day),
            rec.arxiv_id,
            str(a.kind),
            a.position,
        )
        for rec in batch.values()
        for a in rec.announcements
    }
    return PreparedBatch(
        dialect=dialect,
        papers=paper_rows,
        categories={i: rec.categories for i, rec in batch.items()},
        versions=list(version_rows.values()),
        announcements=list(ann_rows.values()),
        lines=[rec.line for rec in batch.values()],
        links={
            i: row
            for i, rec in batch.items()
            if (row := link_row(i, rec.abstract, rec.comments, rec.journal_ref)) is not None
        },
    )


def link_row(
    arxiv_id: str, abstract: str | None, comments: str | None, journal_ref: str | None
) -> tuple[Any, ...] | None:
    """A paper's `paper_links` row (LINK_COLUMNS order), None when it has no badge."""
    found = find_paper_links(abstract, comments, journal_ref)
    if found.empty:
        return None
    venue = found.venue
    return (
        arxiv_id,
        found.has_code,
        _json(found.links_json()),
        venue.label[:200] if venue else None,
        venue.key[:64] if venue and venue.key else None,
    )


def link_rows(
    conn: Connection, batch: PreparedBatch, new_ids: Sequence[str], updated_ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    """The badge rows of the papers just written: a new paper's from its record; an updated
    one's from the row as merged (a record without comments keeps the stored ones)."""
    rows = [batch.links[i] for i in new_ids if i in batch.links]
    for chunk in chunks(updated_ids, IN_CHUNK):
        merged = conn.execute(
            select(
                papers.c.arxiv_id, papers.c.abstract, papers.c.comments, papers.c.journal_ref
            ).where(papers.c.arxiv_id.in_(chunk))
        )
        rows.extend(r for m in merged if (r := link_row(*m)) is not None)
    return rows


def write(conn: Connection, batch: PreparedBatch, *, index: bool = True) -> UpsertCounts:
    """Write a prepared batch in the caller's transaction (see the module docstring).

    `index=False` leaves new papers out of the database's search index: for a bulk load whose
    index is built once afterwards (`app.importer`), never for a store that serves searches
    from it meanwhile."""
    counts = UpsertCounts()
    if not batch.papers:
        return counts
    if batch.dialect != conn.dialect.name:
        raise ValueError(f"batch prepared for {batch.dialect}, written to {conn.dialect.name}")
    d = _Dialect(conn.dialect.name)

    existing: dict[str, tuple[int, str]] = {}
    for chunk in chunks([row[_ID] for row in batch.papers], IN_CHUNK):
        found = conn.execute(
            select(papers.c.arxiv_id, papers.c.version, papers.c.content_hash).where(
                papers.c.arxiv_id.in_(chunk)
            )
        )
        existing.update({r.arxiv_id: (_rank(r.version), r.content_hash) for r in found})

    rows, new_ids, updated_ids = [], [], []
    replaced: list[tuple[Any, ...]] = []
    for row in batch.papers:
        arxiv_id, rank, digest = row[_ID], _rank(row[_VERSION]), row[_DIGEST]
        old = existing.get(arxiv_id)
        if old is None:
            new_ids.append(arxiv_id)
        elif rank > old[0] or (rank == old[0] and digest != old[1]):
            updated_ids.append(arxiv_id)
            if rank > old[0]:
                replaced.append((row[_CHANGED], arxiv_id, rank))
        else:
            counts.unchanged += 1
            continue
        rows.append(row)
    if replaced:
        # The SQL re-checks the version, so a concurrent writer's newer row is kept as is.
        conn.exec_driver_sql(d.revision_copy, replaced)
    if rows:
        conn.exec_driver_sql(d.paper_upsert, rows)
        # New rows are indexed here, set-based; updates and deletes reach the index inside
        # the database (SQLite's triggers, PostgreSQL's generated column).
        if index:
            index_for(conn).add(conn, new_ids)
    counts.inserted, counts.updated = len(new_ids), len(updated_ids)
    counts.written_ids = new_ids + updated_ids

    # Categories follow the metadata that was just written.
    for chunk in chunks(updated_ids, IN_CHUNK):
        conn.execute(categories_t.delete().where(categories_t.c.arxiv_id.in_(chunk)))
    cat_rows = [(c, i) for i in counts.written_ids for c in batch.categories[i]]
    if cat_rows:
        conn.exec_driver_sql(d.category_insert, cat_rows)
    if batch.versions:
        conn.exec_driver_sql(d.version_upsert, batch.versions)
    if batch.announcements:
        result = conn.exec_driver_sql(d.announcement_insert, batch.announcements)
        # Both drivers sum rowcount over executemany; conflicts count zero.
        counts.announcements = max(result.rowcount, 0)
    # Badges follow the text just written, in the paper's transaction (its changed_at moves,
    # so every page version that shows them moves too).
    for chunk in chunks(updated_ids, IN_CHUNK):
        conn.execute(links_t.delete().where(links_t.c.arxiv_id.in_(chunk)))
    if badges := link_rows(conn, batch, new_ids, updated_ids):
        conn.exec_driver_sql(d.link_insert, badges)
    return counts


def upsert_papers(conn: Connection, records: Iterable[PaperRecord]) -> UpsertCounts:
    """Write one batch of records (their versions, categories and announcements) in the
    caller's transaction."""
    return write(conn, prepare(records, conn.dialect.name))


def upsert_venue(conn: Connection, venue: str, records: Sequence[VenuePaperRecord]) -> int:
    """Write a venue's papers (idempotent on (venue, venue paper id)) and link them."""
    now = datetime.now(UTC)
    stmt = insert(conn, venues_t)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[venues_t.c.name], set_={"imported_at": stmt.excluded.imported_at}
        ),
        {"name": venue, "paper_count": 0, "linked_count": 0, "imported_at": now},
    )
    rows = {
        r.venue_paper_id: {
            "venue": venue,
            "venue_paper_id": r.venue_paper_id,
            "title": r.title,
            "title_key": title_key(r.title),
            "authors": r.authors,
            "abstract": r.abstract,
            "status": r.status,
            "track": r.track,
            "site": r.site,
            "keywords": r.keywords or None,
            "tldr": r.tldr,
        }
        for r in records
    }
    if rows:
        stmt = insert(conn, venue_papers_t)
        updatable = (
            "title",
            "title_key",
            "authors",
            "abstract",
            "status",
            "track",
            "site",
            "keywords",
            "tldr",
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[venue_papers_t.c.venue, venue_papers_t.c.venue_paper_id],
                set_={c: stmt.excluded[c] for c in updatable},
            ),
            list(rows.values()),
        )
    return len(rows)


def link_venues(conn: Connection, venue: str | None = None) -> int:
    """Link venue papers to the arXiv paper with the same normalised title — only when exactly
    one paper has that title, so a common title never links to the wrong paper."""
    match = (
        select(func.min(papers.c.arxiv_id))
        .where(papers.c.title_key == venue_papers_t.c.title_key)
        .having(func.count() == 1)
        .scalar_subquery()
    )
    stmt = venue_papers_t.update().values(arxiv_id=match)
    if venue is not None:
        stmt = stmt.where(venue_papers_t.c.venue == venue)
    conn.execute(stmt)
    counts = select(
        venue_papers_t.c.venue,
        func.count().label("n"),
        func.count(venue_papers_t.c.arxiv_id).label("linked"),
    ).group_by(venue_papers_t.c.venue)
    linked_total = 0
    for row in conn.execute(counts):
        conn.execute(
            venues_t.update()
            .where(venues_t.c.name == row.venue)
            .values(paper_count=row.n, linked_count=row.linked)
        )
        linked_total += row.linked
    return linked_total


def record_click(conn: Connection, arxiv_id: str, kind: str) -> None:
    if kind not in ("pdf", "summary"):
        raise ValueError(f"unknown click kind {kind!r}")
    stmt = insert(conn, clicks_t)
    column = clicks_t.c[kind]
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[clicks_t.c.arxiv_id], set_={kind: column + literal_column("1")}
        ),
        {"arxiv_id": arxiv_id, "pdf": int(kind == "pdf"), "summary": int(kind == "summary")},
    )
