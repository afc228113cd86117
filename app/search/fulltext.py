"""The full-text index: a Tantivy index beside the database, one for SQLite and PostgreSQL
deployments alike, ranking every match (BM25 with block-max WAND pruning) instead of the
newest few thousand.

Layout of the index directory (`index_dir(settings, url)`):

    CURRENT              the name of the live generation, replaced atomically
    g-<hex>/             one Tantivy index (a generation) and its `papershelf.json` state
    write.lock           held (flock) by whoever writes: one writer at a time, any process

The database stays the source of truth; the index follows it by a watermark. `sync` indexes
the papers changed since the last one (`changed_at` at or after the watermark minus a
re-read window, a pk above the highest indexed, or a TL;DR written since: the `has:tldr`
flag), deleting each paper's old document by pk first so a re-read is harmless. Another
database at the same address (its first paper differs, or it has fewer papers) gets a new
index. `rebuild` writes a new generation and publishes it by
replacing `CURRENT`: a killed rebuild leaves the old generation serving. Tantivy's commit is
atomic too, so a killed sync loses nothing (its rows are re-read next time).

Readers open the live generation memory-mapped and reload when its `meta.json` or `CURRENT`
changes: several web processes share one index, each searching without a lock. A search
first compares the database's newest paper with the watermark (a few index probes) and syncs
when the database is ahead, so writers need not know about the index; the fetch pool and the
importer still sync right after they commit, so a reader rarely pays for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import tantivy
from sqlalchemy import Connection, Engine

from app.search.base import (
    NO_TERMS_WARNING,
    SearchHit,
    SearchPage,
    Sort,
    paper_links,
    papers,
    summaries,
)
from app.search.query import STOP_WORDS, ParsedQuery, Term
from app.settings import Settings

log = logging.getLogger(__name__)

#: Bumped whenever the schema or the analysis changes: an index of another version is rebuilt.
#: 3: the `code` flag (has:code).
SCHEMA_VERSION = 3
#: A title match adds this share of its BM25 score on top of the title+abstract text's.
TITLE_BOOST = 0.5
AUTHOR_BOOST = 1.0
#: Consecutive words of a natural-language query found as a phrase earn this bonus.
PHRASE_BOOST = 0.25
#: A hyphenated compound found as typed ("state-of-the-art") earns this bonus.
COMPOUND_BOOST = 0.5
#: Rows changed this long before the watermark are re-read by a sync: a transaction that
#: stamped its rows earlier but committed after the last sync is still picked up.
REREAD_WINDOW = timedelta(minutes=2)
#: A search catches up inline on at most this many new papers; a bigger gap is the
#: writers' or `papershelf reindex`'s job (the search then serves the database engine).
INLINE_SYNC_LIMIT = 20_000
#: How many of the best plain-BM25 hits the phrase bonus re-scores.
RERANK_DEPTH = 100
_BATCH = 2000
_WRITER_HEAP = 128 * 2**20

_STEMMED = "papershelf_en"
_NAMES = "papershelf_names"


def _analyzer(stem: bool) -> tantivy.TextAnalyzer:
    # Tantivy's simple tokenizer splits where the query parser's unicode61 rules do (on
    # anything not alphanumeric); folding makes "Schrödinger" match "schrodinger".
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(100))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
    )
    if stem:
        builder = builder.filter(tantivy.Filter.stemmer("english"))
    return builder.build()


ANALYZERS = {_STEMMED: _analyzer(stem=True), _NAMES: _analyzer(stem=False)}
#: Words of a paper `likeness` matches others on: its heaviest (tf x idf). On a tuning
#: sample of 2,000 papers (bench.related --seed 9) the 48 heaviest rank as well as every
#: word (shared authors 0.028 both, same category share) at 0.63x the time; 32 lose a little.
LIKENESS_WORDS = 48
#: Stop words as the stemmed analyzer writes them.
_STOP_STEMS = frozenset(w for s in STOP_WORDS for w in ANALYZERS[_STEMMED].analyze(s))


def term_counts(text: str) -> Counter[str]:
    """How often each word of a title or abstract occurs, as the index holds words (folded,
    stemmed); stop words, one-letter words and bare numbers left out."""
    counts = Counter(ANALYZERS[_STEMMED].analyze(text))
    for w in [w for w in counts if len(w) < 2 or w.isdigit() or w in _STOP_STEMS]:
        del counts[w]
    return counts


_FIELD_ANALYZER = {"title": _STEMMED, "abstract": _STEMMED, "authors": _NAMES, "body": _STEMMED}
_BOOST = {"title": TITLE_BOOST, "abstract": 1.0, "authors": AUTHOR_BOOST, "body": 1.0}
#: Where a word without a field is looked for.
ANY_FIELD: tuple[str, ...] = ("body", "title", "authors")


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("pk", indexed=True, fast=True)
    sb.add_text_field("title", tokenizer_name=_STEMMED)
    sb.add_text_field("abstract", tokenizer_name=_STEMMED)
    sb.add_text_field("authors", tokenizer_name=_NAMES)
    # Title and abstract as one text: BM25 over one field scores a word once (per-field
    # scores summed count its rarity twice and over-reward short titles).
    sb.add_text_field("body", tokenizer_name=_STEMMED)
    sb.add_text_field("cat", tokenizer_name="raw", index_option="basic")
    sb.add_integer_field("day", indexed=True, fast=True)  # sort_date as an ordinal
    sb.add_integer_field("tldr", indexed=True)  # 1 when the paper has a TL;DR
    sb.add_integer_field("code", indexed=True)  # 1 when the paper links its code
    # Date order with a stable tie-break in one fast field: day, then pk.
    sb.add_integer_field("recency", fast=True)
    return sb.build()


SCHEMA = build_schema()
_RECENCY_SCALE = 10**10  # pk < 1e10, so day * scale + pk keeps day order first


def _document(row: Any, has_tldr: bool) -> tantivy.Document:
    doc = tantivy.Document()
    doc.add_integer("pk", row.pk)
    doc.add_text("title", row.title or "")
    doc.add_text("abstract", row.abstract or "")
    doc.add_text("body", f"{row.title or ''}\n{row.abstract or ''}")
    for author in row.authors or ():
        doc.add_text("authors", str(author))
    for cat in row.categories or ():
        doc.add_text("cat", str(cat))
    day = row.sort_date.toordinal() if row.sort_date else 0
    doc.add_integer("day", day)
    doc.add_integer("tldr", int(has_tldr))
    # Badges are written with the paper row, so a changed flag comes with a changed_at.
    doc.add_integer("code", int(bool(row.has_code)))
    doc.add_integer("recency", day * _RECENCY_SCALE + row.pk)
    return doc


_COLUMNS = (
    papers.c.pk,
    papers.c.arxiv_id,
    papers.c.title,
    papers.c.abstract,
    papers.c.authors,
    papers.c.categories,
    papers.c.sort_date,
    papers.c.changed_at,
    sa.exists()
    .where(paper_links.c.arxiv_id == papers.c.arxiv_id, paper_links.c.has_code)
    .label("has_code"),
)


# --- where an index lives ------------------------------------------------------------------


def index_dir(settings: Settings, url: sa.URL | str) -> Path | None:
    """The index directory of a database: `settings.search_index_path` when set, beside the
    file of an SQLite database, else under the data dir keyed by the database's address.
    None for an in-memory SQLite database (it has no index)."""
    if settings.search_index_path is not None:
        return settings.search_index_path
    url = sa.make_url(url) if isinstance(url, str) else url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            return None
        db = Path(url.database)
        return db.with_name(db.name + ".search")
    address = url.render_as_string(hide_password=True)
    digest = hashlib.sha256(address.encode()).hexdigest()[:12]
    return settings.data_dir / "search" / f"{url.database or 'db'}-{digest}"


# --- the index's state file ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class State:
    """What a generation has indexed: everything changed before `watermark` (minus the
    re-read window) and every pk up to `max_pk`."""

    schema: int
    watermark: datetime | None
    max_pk: int
    docs: int
    # The newest TL;DR indexed (a paper's has-TL;DR flag follows the summaries table).
    tldr_mark: datetime | None = None
    # The database's first paper (id and when it was stored): another database at the same
    # address (restored, replaced, recreated) has another, and its index is rebuilt.
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "max_pk": self.max_pk,
            "docs": self.docs,
            "tldr_mark": self.tldr_mark.isoformat() if self.tldr_mark else None,
            "origin": self.origin,
        }

    @classmethod
    def read(cls, gen: Path) -> State | None:
        try:
            data = json.loads((gen / "papershelf.json").read_text())
            mark, tldr = data.get("watermark"), data.get("tldr_mark")
            return cls(
                int(data["schema"]),
                datetime.fromisoformat(mark) if mark else None,
                int(data["max_pk"]),
                int(data["docs"]),
                datetime.fromisoformat(tldr) if tldr else None,
                str(data.get("origin") or ""),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, gen: Path) -> None:
        tmp = gen / f".papershelf.json.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(self.to_json()))
        os.replace(tmp, gen / "papershelf.json")


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back naive (they were written in UTC).
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True, slots=True)
class Head:
    """Where the papers table stands: what a state is compared with."""

    max_pk: int
    changed: datetime | None
    tldr: datetime | None
    origin: str

    def matches(self, state: State) -> bool:
        return (
            state.max_pk == self.max_pk
            and state.watermark == self.changed
            and state.tldr_mark == self.tldr
            and state.origin == self.origin
        )

    def state(self, docs: int) -> State:
        return State(SCHEMA_VERSION, self.changed, self.max_pk, docs, self.tldr, self.origin)


def _db_head(conn: Connection) -> Head:
    """The highest pk, the newest change and TL;DR, and the first paper: index probes."""
    # Scalar subqueries: SQLite's min/max shortcut takes one aggregate per SELECT.
    first = sa.select(papers).order_by(papers.c.pk).limit(1).subquery()
    max_pk, changed, tldr, first_id, first_stored = conn.execute(
        sa.select(
            sa.select(sa.func.max(papers.c.pk)).scalar_subquery(),
            sa.select(sa.func.max(papers.c.changed_at)).scalar_subquery(),
            sa.select(sa.func.max(summaries.c.created_at)).scalar_subquery(),
            sa.select(first.c.arxiv_id).scalar_subquery(),
            sa.select(first.c.stored_at).scalar_subquery(),
        )
    ).one()
    stored = _aware(first_stored)
    origin = f"{first_id}@{stored.isoformat()}" if first_id and stored else ""
    return Head(int(max_pk or 0), _aware(changed), _aware(tldr), origin)


def _with_tldr(conn: Connection, rows: Sequence[Any]) -> set[str]:
    """Which of these papers have a TL;DR (one primary-key probe per paper)."""
    ids = [r.arxiv_id for r in rows]
    found = conn.execute(sa.select(summaries.c.arxiv_id).where(summaries.c.arxiv_id.in_(ids)))
    return set(found.scalars())


# --- the index -----------------------------------------------------------------------------


def _whole(state: State, head: Head) -> bool:
    """Whether the index must be rebuilt rather than synced: another schema, or another
    database (another first paper, or fewer papers than were indexed)."""
    return (
        state.schema != SCHEMA_VERSION or state.origin != head.origin or head.max_pk < state.max_pk
    )


class IndexUnavailable(RuntimeError):
    """The index cannot serve this search yet (not built, or far behind the database)."""


class _Reader:
    """One opened generation, reloaded when its meta.json changes."""

    def __init__(self, gen: Path) -> None:
        self.gen = gen
        self.index = tantivy.Index(SCHEMA, path=str(gen), reuse=True)
        for name, analyzer in ANALYZERS.items():
            self.index.register_tokenizer(name, analyzer)
        self.index.config_reader(reload_policy="Manual")
        self.meta_stamp = self._meta_stamp()
        self.state = State.read(gen)

    def _meta_stamp(self) -> tuple[int, int]:
        # Tantivy's commit and our state file are written one after the other: a reader
        # refreshing between the two must see the second too.
        stamps = []
        for name in ("meta.json", "papershelf.json"):
            try:
                stamps.append((self.gen / name).stat().st_mtime_ns)
            except FileNotFoundError:
                stamps.append(0)
        return stamps[0], stamps[1]

    def refresh(self) -> None:
        stamp = self._meta_stamp()
        if stamp != self.meta_stamp:
            if stamp[0] != self.meta_stamp[0]:
                self.index.reload()
            self.meta_stamp = stamp
            self.state = State.read(self.gen)


class FullTextIndex:
    """A database's full-text index: build, sync, search. One instance per directory per
    process (`fulltext_for`); thread-safe."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._reader: _Reader | None = None
        self._current_stamp: int | None = None
        self._background: threading.Thread | None = None

    # --- generations ---------------------------------------------------------------------

    def _current(self) -> Path | None:
        try:
            name = (self.root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        gen = self.root / name
        return gen if name and (gen / "meta.json").exists() else None

    def _publish(self, gen: Path) -> None:
        tmp = self.root / f".CURRENT.{uuid.uuid4().hex}"
        tmp.write_text(gen.name)
        os.replace(tmp, self.root / "CURRENT")

    def _drop_old(self, keep: Path) -> None:
        # Open readers keep their memory maps of removed files (POSIX semantics).
        for path in self.root.glob("g-*"):
            if path != keep and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def _write_lock(self, *, wait: bool) -> Iterator[bool]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "write.lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def reader(self) -> _Reader | None:
        """The live generation, opened (or reopened after a rebuild) and refreshed."""
        with self._lock:
            try:
                stamp = (self.root / "CURRENT").stat().st_mtime_ns
            except FileNotFoundError:
                self._reader = None
                return None
            if self._reader is None or stamp != self._current_stamp:
                gen = self._current()
                if gen is None:
                    return None
                if self._reader is None or self._reader.gen != gen:
                    self._reader = _Reader(gen)
                self._current_stamp = stamp
            self._reader.refresh()
            return self._reader

    def state(self) -> State | None:
        reader = self.reader()
        return reader.state if reader else None

    # --- writing -------------------------------------------------------------------------

    def rebuild(self, engine: Engine, *, on_batch: Callable[[int], None] | None = None) -> State:
        """Index every paper into a new generation and publish it. Waits for other writers."""
        with self._write_lock(wait=True):
            return self._rebuild_locked(engine, on_batch)

    def _rebuild_locked(self, engine: Engine, on_batch: Callable[[int], None] | None) -> State:
        gen = self.root / f"g-{uuid.uuid4().hex[:12]}"
        gen.mkdir(parents=True)
        writer = None
        try:
            index = tantivy.Index(SCHEMA, path=str(gen), reuse=False)
            for name, analyzer in ANALYZERS.items():
                index.register_tokenizer(name, analyzer)
            writer = index.writer(
                heap_size=_WRITER_HEAP, num_threads=max(1, min(4, os.cpu_count() or 1))
            )
            with engine.connect() as conn:
                # The head first: rows changed while we read are re-read by the next sync.
                head = _db_head(conn)
                docs = 0
                rows = conn.execution_options(yield_per=_BATCH).execute(
                    sa.select(*_COLUMNS).where(papers.c.pk <= head.max_pk).order_by(papers.c.pk)
                )
                for batch in rows.partitions():
                    tldrs = _with_tldr(conn, batch)
                    for row in batch:
                        writer.add_document(_document(row, row.arxiv_id in tldrs))
                    docs += len(batch)
                    if on_batch:
                        on_batch(len(batch))
            writer.commit()
            writer.wait_merging_threads()
            state = head.state(docs)
            state.write(gen)
        except BaseException:
            if writer is not None:
                # Else its threads go on writing segments into the removed directory.
                writer.rollback()
            shutil.rmtree(gen, ignore_errors=True)
            raise
        self._publish(gen)
        self._drop_old(gen)
        return state

    def sync(self, engine: Engine | Connection, *, wait: bool = True) -> int | None:
        """Index the papers changed since the last sync (rebuilding when there is no index
        yet or it belongs to another schema or database). Returns the papers indexed, or
        None when another writer holds the index and `wait` is False."""
        with self._write_lock(wait=wait) as locked:
            if not locked:
                return None
            return self._sync_locked(engine)

    def _sync_locked(self, target: Engine | Connection) -> int:
        engine = target if isinstance(target, Engine) else target.engine
        gen = self._current()
        state = State.read(gen) if gen else None
        with engine.connect() as conn:
            head = _db_head(conn)
        if gen is None or state is None or _whole(state, head):
            return self._rebuild_locked(engine, None).docs
        if head.matches(state):
            return 0
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        since = (state.watermark or epoch) - REREAD_WINDOW
        tldr_since = (state.tldr_mark or epoch) - REREAD_WINDOW
        index = tantivy.Index(SCHEMA, path=str(gen), reuse=True)
        for name, analyzer in ANALYZERS.items():
            index.register_tokenizer(name, analyzer)
        writer = index.writer(heap_size=_WRITER_HEAP // 2, num_threads=1)
        count = 0
        added = 0
        with engine.connect() as conn:
            rows = conn.execution_options(yield_per=_BATCH).execute(
                sa.select(*_COLUMNS).where(
                    sa.or_(
                        papers.c.changed_at >= since,
                        papers.c.pk > state.max_pk,
                        papers.c.arxiv_id.in_(
                            sa.select(summaries.c.arxiv_id).where(
                                summaries.c.created_at >= tldr_since
                            )
                        ),
                    ),
                    papers.c.pk <= head.max_pk,
                )
            )
            for batch in rows.partitions():
                tldrs = _with_tldr(conn, batch)
                for row in batch:
                    if row.pk <= state.max_pk:
                        writer.delete_documents_by_term("pk", row.pk)
                    else:
                        added += 1
                    writer.add_document(_document(row, row.arxiv_id in tldrs))
                count += len(batch)
        writer.commit()
        writer.wait_merging_threads()
        head.state(state.docs + added).write(gen)
        return count

    def catch_up(self, conn: Connection) -> State:
        """Make the index current for a search on `conn` (see the module docstring).
        Raises IndexUnavailable when it cannot be made so quickly; a large gap is then
        closed by a background thread of this process (or by a writer)."""
        head = _db_head(conn)
        reader = self.reader()
        state = reader.state if reader else None
        if state is not None and head.matches(state):
            return state
        # No index, another schema, or a database that is not the one indexed: rebuilt
        # whole, and nothing indexed may be served meanwhile (its pks name other papers).
        whole = state is None or _whole(state, head)
        work = head.max_pk if whole or state is None else head.max_pk - state.max_pk
        if work > INLINE_SYNC_LIMIT:
            self._sync_in_background(conn.engine)
            if whole or state is None:
                raise IndexUnavailable("the search index is being built")
            return state  # serve what is indexed; the rest follows shortly
        # Another process syncing: search what is there rather than wait (when it may).
        done = self.sync(conn.engine, wait=whole)
        if done is None and whole:
            raise IndexUnavailable("the search index is being built")
        reader = self.reader()
        if reader is None or reader.state is None:
            raise IndexUnavailable("the search index is being built")
        return reader.state

    def _sync_in_background(self, engine: Engine) -> None:
        with self._lock:
            if self._background is not None and self._background.is_alive():
                return
            self._background = threading.Thread(
                target=self._background_sync, args=(engine,), name="search-index", daemon=True
            )
            self._background.start()

    def _background_sync(self, engine: Engine) -> None:
        try:
            started = time.perf_counter()
            done = self.sync(engine, wait=False)
            if done:
                log.info(
                    "search index: %d papers indexed in %.1fs", done, time.perf_counter() - started
                )
        except Exception:
            log.exception("search index: background sync failed; the next search retries")

    # --- searching -----------------------------------------------------------------------

    def search(
        self,
        conn: Connection,
        query: ParsedQuery,
        *,
        categories: Sequence[str] = (),
        date_from: date | None = None,
        date_to: date | None = None,
        sort: Sort = "relevance",
        limit: int = 20,
        offset: int = 0,
        max_results: int = 1000,
        catch_up: bool = True,
    ) -> SearchPage:
        """One page of papers matching `query`; the same contract as the database backends'
        `search` (filters applied inside the index, `total` counted up to `max_results`)."""
        warnings = list(query.warnings)
        limit = max(0, min(limit, max_results))
        offset = max(0, offset)
        if catch_up:
            self.catch_up(conn)
        reader = self.reader()
        if reader is None:
            raise IndexUnavailable("the search index is being built")
        compiled = compile_query(query, categories=categories, date_from=date_from, date_to=date_to)
        if compiled is None:
            if NO_TERMS_WARNING not in warnings:
                warnings.append(NO_TERMS_WARNING)
            return SearchPage((), 0, limit, offset, warnings=warnings, query=query)
        page_size = max(0, min(limit, max_results - offset))
        searcher = reader.index.searcher()
        by_date = sort == "date" or not compiled.scored
        ranked: list[tuple[float | None, int]]
        if by_date:
            result = searcher.search(
                compiled.query,
                limit=max(page_size, 1),
                count=True,
                offset=offset,
                order_by_field="recency",
            )
            found = result.hits[:page_size]
            ranked = [(None, pk) for pk in _pks(searcher, [a for _, a in found])]
        elif compiled.phrases and offset < RERANK_DEPTH:
            # The best RERANK_DEPTH re-scored, then the rest in BM25 order: a page that
            # straddles the depth is whole.
            depth = max(RERANK_DEPTH, offset + page_size)
            result = searcher.search(compiled.query, limit=depth, count=True)
            head, rest = result.hits[:RERANK_DEPTH], result.hits[RERANK_DEPTH:]
            tail = _pks(searcher, [a for _, a in rest])
            ranked = _rerank(searcher, head, compiled.phrases) + [
                (float(sc), pk) for (sc, _), pk in zip(rest, tail, strict=True)
            ]
            ranked = ranked[offset : offset + page_size]
        else:
            result = searcher.search(
                compiled.query, limit=max(page_size, 1), count=True, offset=offset
            )
            found = result.hits[:page_size]
            pks = _pks(searcher, [a for _, a in found])
            ranked = [(float(sc), pk) for (sc, _), pk in zip(found, pks, strict=True)]
        # (count is missing from the package's type stubs)
        total = int(getattr(result, "count", 0) or 0)
        hits = _hits(conn, [pk for _, pk in ranked], [sc for sc, _ in ranked]) if ranked else ()
        return SearchPage(
            hits,
            min(total, max_results),
            limit,
            offset,
            total_capped=total >= max_results,
            warnings=warnings,
            query=query,
        )

    def among(
        self,
        query: ParsedQuery,
        pks: Sequence[int],
        *,
        categories: Sequence[str] = (),
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> set[int]:
        """Which of these papers (by pk) match `query` and the filters: one search, inside
        the given pks only."""
        reader = self.reader()
        if reader is None or not pks:
            return set()
        compiled = compile_query(query, categories=categories, date_from=date_from, date_to=date_to)
        within = tantivy.Query.term_set_query(SCHEMA, "pk", list(pks))
        clauses = [(tantivy.Occur.Must, within)]
        if compiled is not None:
            clauses.append((tantivy.Occur.Must, compiled.query))
        elif query.negative:
            for term in query.negative:
                if (q := _term_query(term)) is not None:
                    clauses.append((tantivy.Occur.MustNot, q))
        searcher = reader.index.searcher()
        found = searcher.search(tantivy.Query.boolean_query(clauses), limit=len(pks), count=False)
        return set(_pks(searcher, [a for _, a in found.hits]))

    def contents(self) -> tuple[str, tuple[int, int]] | None:
        """A key that changes whenever the index does (a commit, a rebuild), for caching
        results; None while there is no index."""
        reader = self.reader()
        return None if reader is None else (str(reader.gen), reader.meta_stamp)

    def likeness(self, text: str, reference: int, pks: Sequence[int]) -> dict[int, float] | None:
        """BM25 of each paper (by pk) against the LIKENESS_WORDS heaviest words of `text`,
        as a share of the reference paper's own score (the paper `text` comes from: about 1
        for itself); one search inside these papers. None while there is no index."""
        reader = self.reader()
        if reader is None:
            return None
        searcher = reader.index.searcher()
        words = _rarest(searcher, term_counts(text), LIKENESS_WORDS)
        if not words or not pks:
            return dict.fromkeys(pks, 0.0)
        within = tantivy.Query.term_set_query(SCHEMA, "pk", [*pks, reference])
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, tantivy.Query.const_score_query(within, 0.0))]
            + [(tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, "body", w)) for w in words]
        )
        found = searcher.search(query, limit=len(pks) + 1, count=False)
        got = _pks(searcher, [a for _, a in found.hits])
        scores = {pk: float(sc) for (sc, _), pk in zip(found.hits, got, strict=True)}
        own = scores.get(reference) or max(scores.values(), default=0.0)
        return {pk: scores.get(pk, 0.0) / own if own else 0.0 for pk in pks}


def _rarest(searcher: tantivy.Searcher, counts: Counter[str], k: int) -> list[str]:
    """The k words that weigh most in a text (sublinear tf x idf), heaviest first."""
    n = int(searcher.num_docs) + 1
    weight = {
        w: (1.0 + math.log(c)) * math.log(n / (1 + searcher.doc_freq("body", w)))
        for w, c in counts.items()
    }
    return sorted(weight, key=lambda w: (-weight[w], w))[:k]


def _pks(searcher: tantivy.Searcher, addresses: Sequence[tantivy.DocAddress]) -> list[int]:
    """The papers' pks of these hits, from the fast field (no stored document read)."""
    if not addresses:
        return []
    values = searcher.fast_field_values("pk", list(addresses))
    return [int(v) for v in values if v is not None]


def _rerank(
    searcher: tantivy.Searcher,
    hits: Sequence[tuple[float, tantivy.DocAddress]],
    phrases: Sequence[tantivy.Query],
) -> list[tuple[float | None, int]]:
    """The hits re-scored with their phrase bonuses, best first (ties: the first order)."""
    if not hits:
        return []
    pks = _pks(searcher, [a for _, a in hits])
    scores = {pk: float(sc) for (sc, _), pk in zip(hits, pks, strict=True)}
    # The phrases, searched among these hits only (an intersection with their pks).
    within = tantivy.Query.term_set_query(SCHEMA, "pk", list(scores))
    bonus_query = tantivy.Query.boolean_query(
        [(tantivy.Occur.Must, tantivy.Query.const_score_query(within, 0.0))]
        + [(tantivy.Occur.Should, q) for q in phrases]
    )
    bonus = searcher.search(bonus_query, limit=len(scores), count=False)
    for (extra, _), pk in zip(bonus.hits, _pks(searcher, [a for _, a in bonus.hits]), strict=True):
        scores[pk] += float(extra)
    order = sorted(range(len(pks)), key=lambda i: (-scores[pks[i]], i))
    return [(scores[pks[i]], pks[i]) for i in order]


def _hits(
    conn: Connection, pks: Sequence[int], scores: Sequence[float | None]
) -> tuple[SearchHit, ...]:
    rows = {
        r.pk: r
        for r in conn.execute(
            sa.select(
                papers.c.pk,
                papers.c.arxiv_id,
                papers.c.title,
                papers.c.sort_date,
                papers.c.primary_category,
                papers.c.authors,
            ).where(papers.c.pk.in_(list(pks)))
        )
    }
    out = []
    for pk, score in zip(pks, scores, strict=True):
        r = rows.get(pk)
        if r is None:  # deleted since the index saw it
            continue
        out.append(
            SearchHit(
                arxiv_id=r.arxiv_id,
                score=score,
                title=r.title,
                sort_date=r.sort_date,
                primary_category=r.primary_category,
                authors=tuple(r.authors or ()),
            )
        )
    return tuple(out)


# --- compiling a parsed query ----------------------------------------------------------------


def _analyze(field: str, token: str) -> list[str]:
    return ANALYZERS[_FIELD_ANALYZER[field]].analyze(token)


def _field_query(field: str, term: Term) -> tantivy.Query | None:
    words = [w for t in term.tokens for w in _analyze(field, t)]
    if not words:
        return None
    if len(words) == 1:
        q = tantivy.Query.term_query(SCHEMA, field, words[0], index_option="freq")
    else:
        q = tantivy.Query.phrase_query(SCHEMA, field, list[str | tuple[int, str]](words))
    boost = _BOOST[field]
    return tantivy.Query.boost_query(q, boost) if boost != 1.0 else q


def _term_query(term: Term) -> tantivy.Query | None:
    """A word or phrase in its field, or in any of title, abstract and authors."""
    fields = (term.field,) if term.field else ANY_FIELD
    parts = [q for f in fields if (q := _field_query(f, term)) is not None]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in parts])


def _any_of(terms: Sequence[Term]) -> tantivy.Query | None:
    parts = [q for t in terms if (q := _term_query(t)) is not None]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in parts])


def _is_bare(group: tuple[Term, ...]) -> bool:
    # One plain word typed without a field or quotes: optional in a natural-language query.
    # A hyphenated compound ("state-of-the-art", "GPT-4o") is plain too: its words are
    # optional and finding them as a phrase earns the phrase bonus.
    return len(group) == 1 and group[0].field is None and not group[0].quoted


def _is_stop_word(term: Term) -> bool:
    return len(term.tokens) == 1 and term.tokens[0] in STOP_WORDS


def is_optional(query: ParsedQuery, group: tuple[Term, ...]) -> bool:
    """Whether a positive group only adds to the score (a plain word of a natural-language
    query) rather than being required."""
    return not query.explicit_operators and _is_bare(group)


def _filters(
    query: ParsedQuery,
    categories: Sequence[str],
    date_from: date | None,
    date_to: date | None,
) -> tuple[list[tantivy.Query], list[tantivy.Query]]:
    must: list[tantivy.Query] = []
    must_not: list[tantivy.Query] = []
    if categories:
        must.append(tantivy.Query.term_set_query(SCHEMA, "cat", list(categories)))
    if query.categories:
        must.append(tantivy.Query.term_set_query(SCHEMA, "cat", list(query.categories)))
    if query.exclude_categories:
        must_not.append(tantivy.Query.term_set_query(SCHEMA, "cat", list(query.exclude_categories)))
    lo = max((d for d in (date_from, query.date_from) if d is not None), default=None)
    hi = min((d for d in (date_to, query.date_to) if d is not None), default=None)
    if query.has_tldr is not None:
        with_tldr = tantivy.Query.term_query(SCHEMA, "tldr", 1)
        (must if query.has_tldr else must_not).append(with_tldr)
    if query.has_code is not None:
        with_code = tantivy.Query.term_query(SCHEMA, "code", 1)
        (must if query.has_code else must_not).append(with_code)
    if lo is not None or hi is not None:
        must.append(
            tantivy.Query.range_query(
                SCHEMA,
                "day",
                tantivy.FieldType.Integer,
                lo.toordinal() if lo else None,
                hi.toordinal() if hi else None,
            )
        )
    return must, must_not


@dataclass(frozen=True, slots=True)
class Compiled:
    """A query for the index: `query` finds and ranks (flat BM25, so Tantivy's block-max
    WAND prunes); `phrases` rescore its best `RERANK_DEPTH` hits (phrase matching reads
    positions, too costly to run over every match)."""

    query: tantivy.Query
    scored: bool
    phrases: tuple[tantivy.Query, ...] = ()


def _word_clauses(term: Term) -> list[tantivy.Query]:
    """One plain word as flat term queries: the text, the title (a bonus) and the authors."""
    out: list[tantivy.Query] = []
    for field in ANY_FIELD:
        for word in (w for t in term.tokens for w in _analyze(field, t)):
            q = tantivy.Query.term_query(SCHEMA, field, word, index_option="freq")
            boost = _BOOST[field]
            out.append(tantivy.Query.boost_query(q, boost) if boost != 1.0 else q)
    return out


def compile_query(
    query: ParsedQuery,
    *,
    categories: Sequence[str] = (),
    date_from: date | None = None,
    date_to: date | None = None,
) -> Compiled | None:
    """The query for the index, or None when there is nothing to search for.

    Natural-language queries (no OR or AND typed) make plain words optional: a paper matching
    more of them ranks higher, and consecutive plain words found as a phrase earn a bonus.
    Quoted phrases and field terms (`ti:`, `au:`, `abs:`) stay required; `-term` excludes;
    `cat:` and `date:` filter inside the index."""
    must, must_not = _filters(query, categories, date_from, date_to)
    # Filters never score: wrap them so only the text decides the order.
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [
        (tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0)) for q in must
    ]
    clauses += [(tantivy.Occur.MustNot, q) for q in must_not]
    for term in query.negative:
        if (q := _term_query(term)) is not None:
            clauses.append((tantivy.Occur.MustNot, q))

    natural = not query.explicit_operators
    optional: list[tantivy.Query] = []
    required: list[tantivy.Query] = []
    bare_run: list[Term] = []
    # Stop words rank nothing when the query has other words ("for" in a short title would
    # outweigh "benchmark" in an abstract); alone ("to be or not to be") they are searched.
    skip_stops = any(is_optional(query, g) and not _is_stop_word(g[0]) for g in query.positive)
    for group in query.positive:
        if is_optional(query, group):
            bare_run.append(group[0])  # kept for adjacency: the phrase pairs skip stop words
            if not (skip_stops and _is_stop_word(group[0])):
                optional += _word_clauses(group[0])
        elif (q := _any_of(group)) is not None:
            required.append(q)
    phrases: list[tantivy.Query] = []
    for term in bare_run:
        words: list[str | tuple[int, str]] = [w for t in term.tokens for w in _analyze("body", t)]
        if len(words) > 1:
            phrase = tantivy.Query.phrase_query(SCHEMA, "body", words)
            phrases.append(tantivy.Query.boost_query(phrase, COMPOUND_BOOST))
    if natural:
        # Adjacent plain words as phrases, in the query's order: "loss scaling" beats a
        # paper with "loss" and "scaling" apart.
        for a, b in itertools.pairwise(bare_run):
            if STOP_WORDS.intersection(a.tokens + b.tokens):
                # "of the" is in every abstract: reading its positions costs much and
                # tells nothing.
                continue
            words = [w for t in a.tokens + b.tokens for w in _analyze("body", t)]
            if len(words) > 1:
                phrase = tantivy.Query.phrase_query(SCHEMA, "body", words)
                phrases.append(tantivy.Query.boost_query(phrase, PHRASE_BOOST))
    scored = bool(required or optional)
    clauses += [(tantivy.Occur.Must, q) for q in required]
    if optional:
        either = tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in optional])
        if not clauses:
            return Compiled(either, True, tuple(phrases))  # flat: pruned best
        # Beside a required term optional words only add to its score; alone, at least one
        # of them must match.
        clauses.append((tantivy.Occur.Should if required else tantivy.Occur.Must, either))
    if not scored:
        if not must and not must_not:
            return None  # nothing to search for (exclusions alone list no papers)
        clauses.append((tantivy.Occur.Must, tantivy.Query.all_query()))
    return Compiled(tantivy.Query.boolean_query(clauses), scored, tuple(phrases))


# --- the process's indexes ----------------------------------------------------------------

_indexes: dict[Path, FullTextIndex] = {}
_indexes_lock = threading.Lock()


def fulltext_for(settings: Settings, url: sa.URL | str) -> FullTextIndex | None:
    """This process's handle on a database's index (None for an in-memory database)."""
    path = index_dir(settings, url)
    if path is None:
        return None
    path = path.resolve()
    with _indexes_lock:
        if (index := _indexes.get(path)) is None:
            index = _indexes[path] = FullTextIndex(path)
        return index


def rebuild(
    settings: Settings, engine: Engine, *, on_batch: Callable[[int], None] | None = None
) -> State | None:
    """Rebuild a database's index (`papershelf reindex`); None for an in-memory database."""
    index = fulltext_for(settings, engine.url)
    return index.rebuild(engine, on_batch=on_batch) if index else None


def sync(settings: Settings, engine: Engine, *, wait: bool = True) -> int:
    """Bring a database's index up to date (after a fetch or an import). With `wait` False,
    returns at once when another writer holds the index (it, or the next search, picks up
    these rows). Returns the papers indexed."""
    index = fulltext_for(settings, engine.url)
    started = time.perf_counter()
    done = index.sync(engine, wait=wait) if index else 0
    if done:
        log.info("search index: %d papers indexed in %.1fs", done, time.perf_counter() - started)
    return done or 0
