"""Ingest benchmark: the imports against bare baselines, in one run.

    python -m bench.ingest            # 50k real papers on SQLite and PostgreSQL, then 2.5M
    python -m bench.ingest --quick    # smoke run (< 1 minute)
    python -m bench.ingest --json out.json
    python -m bench.ingest --scale 2500000 --only-scale   # the 2.5M runs alone

Figures are ratios against a baseline timed in the same run, because absolute times drift
on a shared machine. The bare baseline parses the same file with orjson and inserts plain rows
with one executemany in one transaction, with no index. Each database also gets a ceiling: the
bare load plus the one search-index build any import that keeps that index must do.

- SQLite: bare inserts + one FTS5 `rebuild` over the imported table (what the bulk import
  does after its load). The Tantivy full-text index (`papershelf import` syncs it after the
  load, on every database) is timed on its own and reported both outside the ratio and
  added to both sides of it.
- PostgreSQL: COPY into a table of the same text columns with the store's generated weighted
  tsvector column (one tsvector computation per paper), then one GIN build.

The scale runs write synthetic papers through the bulk path (each database's search index
built once after the load) and record disk use and the importing process's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from app.db import bulk, store
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.importer import bulk_load, import_file
from app.ingest.formats import read_file
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.search import fulltext
from app.search.backend import index_for, search_papers
from app.search.sqlite_fts import REBUILD_HASHSIZE
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def find_data() -> Path:
    if env := os.environ.get("PAPERSHELF_SHARED_DATA"):
        return Path(env)
    for parent in ROOT.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    sys.exit("bench: ../shared/data not found (set PAPERSHELF_SHARED_DATA)")


@dataclass
class Row:
    name: str
    papers: int
    seconds: float
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.papers / self.seconds if self.seconds else 0.0


def read_lines(path: Path, limit: int | None) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        lines = [line for line in fh if line.strip()]
    return lines[:limit] if limit else lines


def median_row(rows: list[Row]) -> Row:
    chosen = sorted(rows, key=lambda r: r.seconds)[len(rows) // 2]
    if len(rows) > 1:
        chosen.extra["all_s"] = [round(r.seconds, 2) for r in rows]
    return chosen


def bare_rows(lines: list[bytes]) -> list[tuple[object, ...]]:
    rows = []
    for line in lines:
        r = orjson.loads(line)
        rows.append(
            (
                r["id"],
                r["listing_date"],
                r["title"],
                r["abstract"],
                orjson.dumps(r["authors"]),
                orjson.dumps(r["categories"]),
                r.get("comment"),
            )
        )
    return rows


def bare_sqlite(lines: list[bytes], db: Path) -> Row:
    start = time.perf_counter()
    rows = bare_rows(lines)
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE p (id TEXT, day TEXT, title TEXT, abstract TEXT, authors TEXT,"
        " categories TEXT, comment TEXT)"
    )
    with conn:
        conn.executemany("INSERT INTO p VALUES (?,?,?,?,?,?,?)", rows)
    conn.close()
    return Row("bare baseline (SQLite)", len(lines), time.perf_counter() - start)


def bare_postgres(lines: list[bytes], url: str) -> Row:
    import psycopg

    start = time.perf_counter()
    rows = bare_rows(lines)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE bare_p (id TEXT, day DATE, title TEXT, abstract TEXT,"
            " authors TEXT, categories TEXT, comment TEXT)"
        )
        cur.executemany("INSERT INTO bare_p VALUES (%s,%s,%s,%s,%s,%s,%s)", rows)
    return Row("bare baseline (PostgreSQL)", len(lines), time.perf_counter() - start)


# The store's weighted tsvector (migration 0001), for the PostgreSQL ceiling.
PG_TSVECTOR = (
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') ||"
    " setweight(to_tsvector('simple', coalesce(authors::text, '')), 'B') ||"
    " setweight(to_tsvector('english', coalesce(abstract, '')), 'C')"
)


def ceiling_postgres(lines: list[bytes], url: str) -> Row:
    """Bare COPY into a papers-shaped table whose generated tsvector is computed once per
    row, then one GIN build: the least an import that keeps PostgreSQL's index can do."""
    import psycopg

    start = time.perf_counter()
    rows = bare_rows(lines)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE bare_s (id TEXT, day DATE, title TEXT, abstract TEXT, authors JSON,"
            f" categories JSON, comment TEXT, search_vector tsvector GENERATED ALWAYS AS"
            f" ({PG_TSVECTOR}) STORED)"
        )
        with cur.copy(
            "COPY bare_s (id, day, title, abstract, authors, categories, comment) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row([v.decode() if isinstance(v, bytes) else v for v in row])
        loaded = time.perf_counter()
        cur.execute("SET maintenance_work_mem = '256MB'")  # as the store's deferred build
        cur.execute("CREATE INDEX ON bare_s USING gin (search_vector)")
    seconds = time.perf_counter() - start
    return Row(
        "ceiling (PostgreSQL): COPY + tsvector + GIN",
        len(lines),
        seconds,
        {"gin_build_s": round(seconds - (loaded - start), 2)},
    )


def full_import(name: str, url: str, path: Path, *, bulk: bool = True) -> tuple[Row, Engine]:
    """The import as `papershelf import` runs it on a large load (`bulk`: the search index
    built once after the load; PostgreSQL pages through COPY), or page by page with the
    index maintained as it goes (and row-by-row upserts on PostgreSQL)."""
    upgrade(url)
    engine = make_engine(url)
    start = time.perf_counter()
    if bulk:
        with bulk_load(engine, defer_index=True):
            report = import_file(engine, path)
            loaded = time.perf_counter()
        extra = {"index_build_s": round(time.perf_counter() - loaded, 2)}
    else:
        report = import_file(engine, path, copy=False)
        extra = {}
    seconds = time.perf_counter() - start
    if report.failed or report.errors:
        raise SystemExit(f"bench: import reported problems: {report.failed or report.errors[:3]}")
    return Row(
        name, report.papers, seconds, {"announcements": report.announcements, **extra}
    ), engine


def fts_rebuild(engine: Engine, papers: int) -> Row:
    """The FTS5 index alone: one `rebuild` over the imported table. Any import that keeps
    one FTS5 index must do at least this work on one core."""
    start = time.perf_counter()
    with engine.begin() as conn:
        index_for(conn).rebuild(conn)
    return Row("FTS5 index alone (rebuild)", papers, time.perf_counter() - start)


def fulltext_build(engine: Engine, papers: int, where: Path) -> Row:
    """The Tantivy full-text index built from the store, as `papershelf import` does after a
    load into an empty index: the same work whichever path wrote the rows."""
    settings = Settings(data_dir=where, search_index_path=where / "fulltext")
    start = time.perf_counter()
    fulltext.rebuild(settings, engine)
    seconds = time.perf_counter() - start
    return Row(
        "full-text index build (Tantivy)",
        papers,
        seconds,
        {"index_mb": round(dir_size(where / "fulltext") / 2**20, 1)},
    )


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def title_queries(lines: list[bytes], n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = []
    for line in rng.sample(lines, min(len(lines), n * 3)):
        title = orjson.loads(line)["title"]
        candidates = [w for w in title.split() if w.isalpha() and len(w) > 4]
        if candidates:
            words.append(rng.choice(candidates).lower())
    return words[:n]


def search_latency(engine: Engine, queries: list[str]) -> dict[str, float]:
    """Top-20 latency of the database's own search (FTS5 / tsvector), which serves while the
    full-text index catches up after an import."""
    times = []
    with engine.connect() as conn:
        search_papers(conn, "warm up the cache", engine="database")
        for q in queries:
            start = time.perf_counter()
            search_papers(conn, q, limit=20, engine="database")
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "queries": len(times),
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
    }


def synthetic(lines: list[bytes], total: int, seed: int = 11) -> Iterator[list[PaperRecord]]:
    """Papers derived from the real ones: new ids, real words shuffled per paper."""
    base = [orjson.loads(line) for line in lines]
    rng = random.Random(seed)
    batch: list[PaperRecord] = []
    day0 = date(2019, 1, 1).toordinal()
    for i in range(total):
        src = base[i % len(base)]
        title = src["title"].split()
        abstract = src["abstract"].split()
        rng.shuffle(title)
        k = rng.randrange(1, max(2, len(abstract)))
        abstract = abstract[k:] + abstract[:k]  # a rotation is a cheap shuffle of a long text
        day = date.fromordinal(day0 + (i // 1200))
        cats = [c for c in src["categories"] if "." in c and " " not in c][:3] or ["cs.AI"]
        batch.append(
            PaperRecord(
                # Ids no real paper has (month 00 is never issued), unique per i.
                arxiv_id=f"{i // 100000 + 9000:04d}.{i % 100000:05d}",
                title=" ".join(title),
                abstract=" ".join(abstract),
                authors=src["authors"],
                primary_category=cats[0],
                categories=cats,
                announcements=[Announcement(cats[0], day, AnnounceKind.NEW, i % 1200)],
                source="synthetic",
            )
        )
        if len(batch) >= 2000:
            yield batch
            batch = []
    if batch:
        yield batch


# The tables an import writes (with their indexes and TOAST), for the disk figures.
STORE_TABLES = ("papers", "paper_versions", "paper_categories", "announcements")


def _rss_mb(field: str) -> float:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


SCALE_QUERIES = 50


def _scale_load(
    lines: list[bytes], total: int, url: str, workdir: Path, fulltext_too: bool
) -> dict[str, object]:
    """Write `total` synthetic papers through the bulk path into a migrated store; runs in a
    forked process of its own, so its peak RSS is the import's (the fork starts at the
    parent's RSS, rss_start_mb; rss_with_source_mb adds the generator's source records)."""
    rss_start = _rss_mb("VmRSS")
    engine = make_engine(url)
    dialect = engine.dialect.name
    start = time.perf_counter()
    gen_seconds = 0.0
    papers = 0
    stream = synthetic(lines, total)
    rss_source = rss_start
    with bulk_load(engine, defer_index=True):
        while True:
            t0 = time.perf_counter()
            batch = next(stream, None)
            prepared = store.prepare(batch, dialect) if batch else None
            gen_seconds += time.perf_counter() - t0
            if papers == 0:
                # The generator has decoded its 50k source records by now: not the import's.
                rss_source = _rss_mb("VmRSS")
            if prepared is None:
                break
            with engine.begin() as conn:
                if dialect == "postgresql":
                    bulk.write(conn, prepared)
                else:
                    store.write(conn, prepared, index=False)  # FTS5 is built after the load
            papers += len(prepared)
        loaded = time.perf_counter()
    built = time.perf_counter()
    if dialect == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    seconds = time.perf_counter() - start - gen_seconds
    out: dict[str, object] = {
        "papers": papers,
        "seconds": seconds,
        "generation_s_excluded": round(gen_seconds, 1),
        "index_build_s": round(built - loaded, 1),
        "rss_start_mb": round(rss_start, 1),
        "rss_with_source_mb": round(rss_source, 1),
        "peak_rss_mb": round(_rss_mb("VmHWM"), 1),
    }
    if dialect == "sqlite":
        out["db_mb"] = round(sum(f.stat().st_size for f in workdir.glob("scale.db*")) / 2**20, 1)
    else:
        with engine.connect() as conn:
            papers_table, tables, database = conn.exec_driver_sql(
                "SELECT pg_total_relation_size('papers'), "
                + " + ".join(f"pg_total_relation_size('{t}')" for t in STORE_TABLES)
                + ", pg_database_size(current_database())"
            ).one()
        out["papers_table_mb"] = round(papers_table / 2**20, 1)
        out["store_tables_mb"] = round(tables / 2**20, 1)
        out["database_mb"] = round(database / 2**20, 1)
        # Per million papers from the store's tables: an empty database's own ~8 MB aside.
        out["db_mb"] = out["store_tables_mb"]
    # The database engine only serves while the full-text index catches up; at millions of
    # papers a tsvector query takes seconds, so fewer queries keep the run's length sane.
    out.update(search_latency(engine, title_queries(lines, SCALE_QUERIES)))
    if fulltext_too:
        row = fulltext_build(engine, papers, workdir / f"fulltext-{dialect}")
        out["fulltext_build_s"] = round(row.seconds, 1)
        out["fulltext_mb"] = row.extra["index_mb"]
    engine.dispose()
    return out


def _in_child(queue: Any, *args: Any) -> None:
    try:
        queue.put(_scale_load(*args))
    except BaseException as exc:  # reported in the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def scale_run(
    lines: list[bytes],
    total: int,
    workdir: Path,
    url: str | None = None,
    fulltext_too: bool = False,
) -> Row:
    """`total` synthetic papers into a fresh store (SQLite in `workdir` unless `url` names
    another database), in a forked process."""
    url = url or f"sqlite:///{workdir / 'scale.db'}"
    upgrade(url)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_in_child, args=(queue, lines, total, url, workdir, fulltext_too))
    child.start()
    result = queue.get()
    child.join()
    if "error" in result:
        raise SystemExit(f"bench: scale run failed: {result['error']}")
    papers, seconds = int(result.pop("papers")), float(result.pop("seconds"))
    db = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    per_million = 1_000_000 / max(papers, 1)
    result["db_gb_per_million"] = round(float(result["db_mb"]) * per_million / 1024, 2)
    return Row(f"scale: {total:,} synthetic ({db})", papers, seconds, result)


def pg_admin_url() -> str | None:
    url = os.environ.get(
        "PAPERSHELF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return url
    except Exception as exc:
        print(f"bench: PostgreSQL skipped ({exc.__class__.__name__})", file=sys.stderr)
        return None


class Rows(list[Row]):
    """The results; each is also logged to stderr as it is measured, so a long run that is
    interrupted still shows what it got."""

    def append(self, row: Row) -> None:
        super().append(row)
        print(
            f"bench: {row.name}: {row.papers:,} papers in {row.seconds:.2f} s {row.extra}",
            file=sys.stderr,
            flush=True,
        )


@contextlib.contextmanager
def pg_database(admin: str, name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one run, dropped afterwards."""
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ceiling_sqlite(lines: list[bytes], db: Path) -> Row:
    """The bare load, then one FTS5 build over it with the store's tokenizer and columns:
    the least an import that keeps SQLite's index can do."""
    start = time.perf_counter()
    bare_sqlite(lines, db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "CREATE VIRTUAL TABLE p_fts USING fts5(title, abstract, authors, content='p',"
            " tokenize='porter unicode61 remove_diacritics 2')"
        )
        built = time.perf_counter()
        # The store's rebuild settings (app.search.sqlite_fts), so both builds do the same.
        conn.execute("INSERT INTO p_fts(p_fts, rank) VALUES ('hashsize', ?)", (REBUILD_HASHSIZE,))
        conn.execute("INSERT INTO p_fts(p_fts) VALUES('rebuild')")
    conn.close()
    seconds = time.perf_counter() - start
    return Row(
        "ceiling (SQLite): bare + one FTS5 build",
        len(lines),
        seconds,
        {"fts5_build_s": round(seconds - (built - start), 2)},
    )


def sqlite_runs(rows: Rows, lines: list[bytes], src: Path, work: Path, repeats: int) -> None:
    # Baseline, ceiling and import alternate, each on a fresh database, and the medians are
    # compared: on a shared machine one run can be off by 2x either way.
    bares, ceilings, fulls = [], [], []
    for i in range(repeats):
        bares.append(bare_sqlite(lines, work / f"bare{i}.db"))
        ceilings.append(ceiling_sqlite(lines, work / f"ceil{i}.db"))
        run, engine = full_import(
            "bulk import (SQLite; FTS5 built after)", f"sqlite:///{work / f'full{i}.db'}", src
        )
        fulls.append(run)
        if i < repeats - 1:
            engine.dispose()
            for f in work.glob(f"*{i}.db*"):
                f.unlink()
    base, ceiling, full = median_row(bares), median_row(ceilings), median_row(fulls)
    rows.append(base)
    ceiling.extra["ratio_vs_bare"] = round(ceiling.rate / base.rate, 3)
    rows.append(ceiling)
    full.extra["ratio_vs_bare"] = round(full.rate / base.rate, 3)
    full.extra["ratio_vs_ceiling"] = round(full.rate / ceiling.rate, 3)
    full.extra.update(search_latency(engine, title_queries(lines, 200)))
    rows.append(full)
    rows.append(fts_rebuild(engine, full.papers))
    tantivy = fulltext_build(engine, full.papers, work / "fulltext")
    # The same build follows either load, so it is added to both sides of this ratio.
    tantivy.extra["ratio_vs_ceiling_both_with_it"] = round(
        (ceiling.seconds + tantivy.seconds) / (full.seconds + tantivy.seconds), 3
    )
    rows.append(tantivy)
    engine.dispose()
    # The previous path, once: the FTS5 index maintained page by page.
    paged, engine = full_import(
        "page-by-page import (SQLite, FTS5 per page)",
        f"sqlite:///{work / 'paged.db'}",
        src,
        bulk=False,
    )
    paged.extra["ratio_vs_ceiling"] = round(paged.rate / ceiling.rate, 3)
    engine.dispose()
    rows.append(paged)


def postgres_runs(rows: Rows, lines: list[bytes], src: Path, admin: str, repeats: int) -> None:
    name = f"papershelf_bench_{os.getpid()}"
    with pg_database(admin, name) as url:
        pg_base = bare_postgres(lines, url)
    rows.append(pg_base)
    ceilings, fulls = [], []
    for _ in range(repeats):
        with pg_database(admin, name) as url:
            ceilings.append(ceiling_postgres(lines, url))
        with pg_database(admin, name) as url:
            run, engine = full_import("bulk import (PostgreSQL; COPY, GIN after)", url, src)
            fulls.append(run)
            latency = search_latency(engine, title_queries(lines, 200))
            engine.dispose()
    ceiling, full = median_row(ceilings), median_row(fulls)
    ceiling.extra["ratio_vs_bare"] = round(ceiling.rate / pg_base.rate, 3)
    rows.append(ceiling)
    full.extra["ratio_vs_bare"] = round(full.rate / pg_base.rate, 3)
    full.extra["ratio_vs_ceiling"] = round(full.rate / ceiling.rate, 3)
    full.extra.update(latency)
    rows.append(full)
    with pg_database(admin, name) as url:
        paged, engine = full_import(
            "row-by-row import (PostgreSQL, GIN per row)", url, src, bulk=False
        )
        paged.extra["ratio_vs_bare"] = round(paged.rate / pg_base.rate, 3)
        paged.extra["ratio_vs_ceiling"] = round(paged.rate / ceiling.rate, 3)
        engine.dispose()
    rows.append(paged)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run on a 5k subset")
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    ap.add_argument("--scale", type=int, default=None, help="synthetic papers (default 2.5M)")
    ap.add_argument("--scale-dbs", default="sqlite,postgresql", help="databases of the scale runs")
    ap.add_argument(
        "--scale-fulltext",
        action="store_true",
        help="also build the Tantivy index after each scale run (time and size)",
    )
    ap.add_argument("--only-scale", action="store_true", help="skip the 50k runs")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--repeats", type=int, default=None, help="baseline/import pairs (median)")
    args = ap.parse_args()

    data = find_data() / "arxiv" / "papers_cs_2025-08-05_2026-07-01.jsonl.gz"
    limit = 5000 if args.quick else None
    scale = args.scale if args.scale is not None else (20_000 if args.quick else 2_500_000)
    lines = read_lines(data, limit)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    admin = None if args.no_postgres else pg_admin_url()
    rows = Rows()
    with tempfile.TemporaryDirectory(prefix="papershelf-bench-") as tmp:
        work = Path(tmp)
        src = work / "papers.jsonl.gz"
        with gzip.open(src, "wb", compresslevel=1) as fh:
            fh.writelines(lines)
        if not args.only_scale:
            # Parse-only, to show where the import's time goes.
            t0 = time.perf_counter()
            parsed = sum(len(p.papers) for p in read_file(src))
            rows.append(Row("parse only (our parser)", parsed, time.perf_counter() - t0))
            sqlite_runs(rows, lines, src, work, args.repeats)
            if admin:
                postgres_runs(rows, lines, src, admin, args.repeats)
        if scale:
            dbs = [d.strip() for d in args.scale_dbs.split(",") if d.strip()]
            if "sqlite" in dbs:
                rows.append(scale_run(lines, scale, work, fulltext_too=args.scale_fulltext))
            if "postgresql" in dbs and admin:
                with pg_database(admin, f"papershelf_bench_scale_{os.getpid()}") as url:
                    rows.append(scale_run(lines, scale, work, url, args.scale_fulltext))

    print(f"\n{'run':<46} {'papers':>10} {'seconds':>9} {'papers/s':>10}  notes")
    for r in rows:
        notes = ", ".join(f"{k}={v}" for k, v in r.extra.items())
        print(f"{r.name:<46} {r.papers:>10,} {r.seconds:>9.2f} {r.rate:>10,.0f}  {notes}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "run": r.name,
                        "papers": r.papers,
                        "seconds": round(r.seconds, 3),
                        "papers_per_s": round(r.rate, 1),
                        **r.extra,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
