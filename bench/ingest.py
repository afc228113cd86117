"""Ingest benchmark: the full import against a bare parse-and-insert baseline, in one run.

    python -m bench.ingest            # 50k real papers on SQLite and PostgreSQL, then 2.5M
    python -m bench.ingest --quick    # smoke run (< 1 minute)
    python -m bench.ingest --json out.json

Figures are ratios against a baseline timed in the same run, because absolute times drift
on a shared machine. The baseline parses the same file with orjson and inserts plain rows
with one executemany in one transaction, with no index.
"""

from __future__ import annotations

import argparse
import gzip
import json
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

import orjson

from app.db import store
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.importer import import_file
from app.ingest.formats import read_file
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.search.backend import index_for, search_papers

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


def full_import(name: str, url: str, path: Path) -> tuple[Row, object]:
    upgrade(url)
    engine = make_engine(url)
    start = time.perf_counter()
    report = import_file(engine, path)
    seconds = time.perf_counter() - start
    if report.failed or report.errors:
        raise SystemExit(f"bench: import reported problems: {report.failed or report.errors[:3]}")
    return Row(name, report.papers, seconds, {"announcements": report.announcements}), engine


def fts_rebuild(engine, papers: int) -> Row:  # type: ignore[no-untyped-def]
    """The FTS5 index alone: one `rebuild` over the imported table. Any import that keeps
    one FTS5 index must do at least this work on one core, so bare/this bounds the ratio."""
    start = time.perf_counter()
    with engine.begin() as conn:
        index_for(conn).rebuild(conn)
    return Row("FTS5 index alone (rebuild)", papers, time.perf_counter() - start)


def title_queries(lines: list[bytes], n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = []
    for line in rng.sample(lines, min(len(lines), n * 3)):
        title = orjson.loads(line)["title"]
        candidates = [w for w in title.split() if w.isalpha() and len(w) > 4]
        if candidates:
            words.append(rng.choice(candidates).lower())
    return words[:n]


def search_latency(engine, queries: list[str]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    times = []
    with engine.connect() as conn:
        search_papers(conn, "warm up the cache")
        for q in queries:
            start = time.perf_counter()
            search_papers(conn, q, limit=20)
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


def scale_run(lines: list[bytes], total: int, workdir: Path) -> Row:
    db = workdir / "scale.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    engine = make_engine(url)
    start = time.perf_counter()
    gen_seconds = 0.0
    papers = 0
    stream = synthetic(lines, total)
    while True:
        t0 = time.perf_counter()
        batch = next(stream, None)
        gen_seconds += time.perf_counter() - t0
        if batch is None:
            break
        with engine.begin() as conn:
            store.upsert_papers(conn, batch)
        papers += len(batch)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    seconds = time.perf_counter() - start - gen_seconds
    size_mb = sum(f.stat().st_size for f in workdir.glob("scale.db*")) / 2**20
    row = Row(
        f"scale: {total:,} synthetic (SQLite)",
        papers,
        seconds,
        {"db_mb": round(size_mb, 1), "generation_s_excluded": round(gen_seconds, 1)},
    )
    row.extra.update(search_latency(engine, title_queries(lines, 200)))
    engine.dispose()
    return row


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run on a 5k subset")
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    ap.add_argument("--scale", type=int, default=None, help="synthetic papers (default 2.5M)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--repeats", type=int, default=None, help="baseline/import pairs (median)")
    args = ap.parse_args()

    data = find_data() / "arxiv" / "papers_cs_2025-08-05_2026-07-01.jsonl.gz"
    limit = 5000 if args.quick else None
    scale = args.scale if args.scale is not None else (20_000 if args.quick else 2_500_000)
    lines = read_lines(data, limit)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    rows = Rows()
    with tempfile.TemporaryDirectory(prefix="papershelf-bench-") as tmp:
        work = Path(tmp)
        src = work / "papers.jsonl.gz"
        with gzip.open(src, "wb", compresslevel=1) as fh:
            fh.writelines(lines)
        # Parse-only, to show where the import's time goes.
        t0 = time.perf_counter()
        parsed = sum(len(p.papers) for p in read_file(src))
        rows.append(Row("parse only (our parser)", parsed, time.perf_counter() - t0))
        # Baseline and full import alternate, each on a fresh database, and the medians are
        # compared: on a shared machine one pair of runs can be off by 2x either way.
        bares, fulls = [], []
        for i in range(args.repeats):
            bares.append(bare_sqlite(lines, work / f"bare{i}.db"))
            run, engine = full_import(
                "full import (SQLite, FTS5)", f"sqlite:///{work / f'full{i}.db'}", src
            )
            fulls.append(run)
            if i < args.repeats - 1:
                engine.dispose()  # type: ignore[attr-defined]
                for f in work.glob(f"*{i}.db*"):
                    f.unlink()
        base = median_row(bares)
        full = median_row(fulls)
        rows.append(base)
        full.extra["ratio_vs_bare"] = round(full.rate / base.rate, 3)
        full.extra["runs"] = len(fulls)
        full.extra.update(search_latency(engine, title_queries(lines, 200)))
        rows.append(full)
        fts = fts_rebuild(engine, full.papers)  # type: ignore[arg-type]
        fts.extra["ceiling_vs_bare"] = round(fts.rate / base.rate, 3)
        rows.append(fts)
        engine.dispose()  # type: ignore[attr-defined]

        admin = None if args.no_postgres else pg_admin_url()
        if admin:
            import psycopg

            name = f"papershelf_bench_{os.getpid()}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                conn.execute(f'CREATE DATABASE "{name}"')
            url = admin.rsplit("/", 1)[0] + "/" + name
            try:
                pg_base = bare_postgres(lines, url)
                rows.append(pg_base)
                pg_full, pg_engine = full_import("full import (PostgreSQL, GIN)", url, src)
                pg_full.extra["ratio_vs_bare"] = round(pg_full.rate / pg_base.rate, 3)
                pg_full.extra.update(search_latency(pg_engine, title_queries(lines, 200)))
                pg_engine.dispose()  # type: ignore[attr-defined]
                rows.append(pg_full)
            finally:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if scale:
            rows.append(scale_run(lines, scale, work))

    print(f"\n{'run':<38} {'papers':>10} {'seconds':>9} {'papers/s':>10}  notes")
    for r in rows:
        notes = ", ".join(f"{k}={v}" for k, v in r.extra.items())
        print(f"{r.name:<38} {r.papers:>10,} {r.seconds:>9.2f} {r.rate:>10,.0f}  {notes}")
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
