"""Import files into the store: detect the format, stream pages, upsert each page in its
own transaction.

A page that fails to write rolls back whole (no partial rows). Earlier pages stay
committed; because every write is an idempotent upsert, running the same import again
completes it without duplicating anything. Records the parser rejects are reported
with file and line and skipped; a file that cannot be read at all writes nothing. A value the
database refuses (PostgreSQL is stricter than SQLite: integer ranges, column lengths) fails
its whole page's statement, so that page is written again record by record: the refused
record is reported like a parser's, its neighbours are kept.

JSON Lines files (the big ones: the listing files, the 2.5M-row Kaggle snapshot) are parsed
and prepared (`store.prepare`) in a forked child process while this one writes: the two
halves of the work overlap on two cores, and only plain tuples cross the pipe.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.queues
import queue
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DataError

from app.db import bulk, store
from app.ingest.formats import detect_format, read_file
from app.ingest.records import DocumentError, ParsedPage, RecordError
from app.search.postgres import PostgresIndex
from app.search.sqlite_fts import SqliteFtsIndex

STREAMED_FORMATS = frozenset({"listing-jsonl", "kaggle-jsonl"})

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Prepared:
    """One page as it crosses from the parsing process: rows ready to write."""

    batch: store.PreparedBatch
    records: int
    errors: list[RecordError]


def _produce(
    path: Path, batch_size: int, dialect: str, out: multiprocessing.queues.Queue[object]
) -> None:
    try:
        for page in read_file(path, batch_size=batch_size):
            out.put(_Prepared(store.prepare(page.papers, dialect), len(page.papers), page.errors))
        out.put(None)
    except DocumentError as exc:
        out.put(("document", str(exc)))
    except OSError as exc:
        out.put(("os", f"{path}: {exc.strerror or exc}"))
    except BaseException as exc:  # anything else: reported, never a silent hang
        out.put(("crash", f"{path}: {type(exc).__name__}: {exc}"))


def _prepared_pages(path: Path, batch_size: int, dialect: str) -> Iterator[_Prepared]:
    """Pages parsed and prepared in a child process, in order; errors re-raised here."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue(maxsize=4)  # bounded: memory stays flat on a 4 GB file
    child = ctx.Process(target=_produce, args=(path, batch_size, dialect, out), daemon=True)
    child.start()
    try:
        while True:
            try:
                item = out.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise DocumentError(str(path), "the parsing process died") from None
                continue
            if item is None:
                return
            if isinstance(item, tuple):
                kind, message = item
                if kind == "os":
                    raise OSError(message)
                raise DocumentError(str(path), message.removeprefix(f"{path}: "))
            yield item
    finally:
        if child.is_alive():
            child.terminate()
        child.join(timeout=5)


def _pages_here(
    path: Path, batch_size: int, dialect: str, venue: str | None
) -> Iterator[_Prepared | ParsedPage]:
    for page in read_file(path, batch_size=batch_size, venue=venue):
        if page.venue_papers:
            yield page
        else:
            yield _Prepared(store.prepare(page.papers, dialect), len(page.papers), page.errors)


@dataclass(slots=True)
class ImportReport:
    path: str
    format: str = ""
    papers: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    announcements: int = 0
    venue_papers: int = 0
    linked: int = 0
    errors: list[RecordError] = field(default_factory=list)
    failed: str | None = None  # why the whole file was rejected

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "format": self.format,
            "papers": self.papers,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "announcements": self.announcements,
            "venue_papers": self.venue_papers,
            "linked": self.linked,
            "errors": [str(e) for e in self.errors],
            "failed": self.failed,
        }


def _write_page(
    conn: Connection, page: _Prepared | ParsedPage, *, copy: bool = False, index: bool = True
) -> dict[str, int]:
    """Write one page in the caller's transaction; what it adds to the report's counts."""
    if isinstance(page, ParsedPage):
        name = page.venue_papers[0].venue
        return {"venue_papers": store.upsert_venue(conn, name, page.venue_papers)}
    counts = bulk.write(conn, page.batch) if copy else store.write(conn, page.batch, index=index)
    return {
        "papers": page.records,
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "announcements": counts.announcements,
    }


def _count(report: ImportReport, written: dict[str, int]) -> None:
    for name, n in written.items():
        setattr(report, name, getattr(report, name) + n)


def _refused(exc: DataError) -> str:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    return f"the database refused a value ({reason})"


def _write_one_by_one(
    engine: Engine, page: _Prepared | ParsedPage, report: ImportReport, *, index: bool
) -> None:
    """Write a page whose batch the database refused one record per transaction, reporting
    each refused record and keeping the others."""
    if isinstance(page, ParsedPage):
        for venue_paper in page.venue_papers:
            try:
                with engine.begin() as conn:
                    written = _write_page(conn, ParsedPage(venue_papers=[venue_paper]))
                _count(report, written)
            except DataError as exc:
                report.errors.append(
                    RecordError(
                        report.path, venue_paper.line, venue_paper.venue_paper_id, _refused(exc)
                    )
                )
        return
    for one in page.batch.split():
        try:
            with engine.begin() as conn:
                written = _write_page(conn, _Prepared(one, 1, []), index=index)
            _count(report, written)
        except DataError as exc:
            report.errors.append(
                RecordError(report.path, one.lines[0], one.papers[0][0], _refused(exc))
            )
    log.warning(
        "%s: a page was written record by record after the database refused a value", report.path
    )


def import_file(
    engine: Engine,
    path: Path,
    *,
    venue: str | None = None,
    batch_size: int = 2000,
    on_page: Callable[[int], None] | None = None,
    copy: bool | None = None,
) -> ImportReport:
    """Import one file, page by page. On PostgreSQL each page goes through COPY and a
    set-based merge (`app.db.bulk`) unless `copy` is False (the row-by-row upserts of
    `app.db.store`, with the same results); a page either path refuses is written again
    record by record. While a deferred build of the search index is pending (`bulk_load`),
    new papers are not indexed one page at a time."""
    report = ImportReport(path=str(path))
    dialect = engine.dialect.name
    use_copy = dialect == "postgresql" if copy is None else copy and dialect == "postgresql"
    with engine.connect() as conn:
        index = not search_index(engine).pending(conn)
    try:
        report.format = detect_format(path)
        pages = (
            _prepared_pages(path, batch_size, dialect)
            if report.format in STREAMED_FORMATS and venue is None
            else _pages_here(path, batch_size, dialect, venue)
        )
        for page in pages:
            report.errors.extend(page.errors)
            try:
                with engine.begin() as conn:
                    written = _write_page(conn, page, copy=use_copy, index=index)
                _count(report, written)  # only once committed
            except DataError:
                _write_one_by_one(engine, page, report, index=index)
            done = len(page.venue_papers) if isinstance(page, ParsedPage) else page.records
            if on_page:
                on_page(done + len(page.errors))
    except DocumentError as exc:
        report.failed = str(exc)
        return report
    except OSError as exc:
        report.failed = f"{path}: {exc.strerror or exc}" if exc.strerror else str(exc)
        return report
    # New papers can complete links to venues imported earlier, and vice versa.
    if report.venue_papers or report.inserted or report.updated:
        with engine.begin() as conn:
            report.linked = store.link_venues(conn)
    return report


# --- large loads: the search index built once, after the load -----------------------------

# Bytes of a file per paper, to size an import before reading it: ~1.7 kB per record in the
# JSON Lines snapshots, ~3x less gzipped. Underestimates leave the index incremental.
_BYTES_PER_PAPER = {True: 600, False: 1800}
# Below this many papers an import keeps the index incremental however small the store.
DEFER_INDEX_MIN_PAPERS = 10_000


def search_index(engine: Engine) -> PostgresIndex | SqliteFtsIndex:
    """The database's own search index, with its deferred-build controls."""
    return PostgresIndex() if engine.dialect.name == "postgresql" else SqliteFtsIndex()


def expected_papers(paths: Sequence[Path]) -> int:
    """About how many papers the files hold, from their sizes."""
    return sum(
        p.stat().st_size // _BYTES_PER_PAPER[p.suffix == ".gz"] for p in paths if p.is_file()
    )


def should_defer_index(engine: Engine, incoming: int, share: float) -> bool:
    """Whether a load of `incoming` papers is large enough, against the papers stored, that
    building the search index once after it beats maintaining it page by page."""
    if incoming < DEFER_INDEX_MIN_PAPERS:
        return False
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(store.papers)).scalar_one()
    return incoming >= share * stored


def complete_search_index(engine: Engine) -> bool:
    """Finish a deferred build of the database's search index, if one is pending (an import
    that was killed midway leaves one); whether there was one."""
    with engine.begin() as conn:
        built = engine.dialect.name == "postgresql" and bulk.complete_indexes(conn)
        return search_index(engine).complete(conn) or built


@contextmanager
def bulk_load(engine: Engine, *, defer_index: bool) -> Iterator[None]:
    """Around the imports of one load: with `defer_index`, the database's search index is set
    aside first (a committed marker: see `search_index`) and built once when the block ends;
    without it, a build an earlier, interrupted load left pending is finished first. If the
    block raises, the build stays pending for the next import or `papershelf reindex`."""
    index = search_index(engine)
    if defer_index:
        with engine.begin() as conn:
            if not index.pending(conn):
                index.defer(conn)
                if engine.dialect.name == "postgresql":
                    bulk.defer_indexes(conn)
    else:
        complete_search_index(engine)
    yield
    complete_search_index(engine)
    if defer_index and engine.dialect.name == "postgresql":
        # Fresh planner statistics: without them (autovacuum may be off, or a minute away)
        # PostgreSQL sorts whole categories for a day's page (147 ms against 0.5 ms at 50k).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
