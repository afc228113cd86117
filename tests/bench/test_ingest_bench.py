"""bench/ingest.py's own parts, in miniature: the baselines and ceilings build what they
claim, the imports land every paper, and the scale run reports its disk and memory."""

from __future__ import annotations

import gzip
import sqlite3
import uuid
from pathlib import Path

import orjson
import psycopg
import pytest

from bench.ingest import (
    Row,
    Rows,
    ceiling_postgres,
    ceiling_sqlite,
    full_import,
    fulltext_build,
    median_row,
    pg_database,
    read_lines,
    scale_run,
)


@pytest.fixture(scope="module")
def lines(shared_data: Path) -> list[bytes]:
    return read_lines(shared_data / "arxiv" / "papers_cs_2025-08-05_2026-07-01.jsonl.gz", 300)


@pytest.fixture
def source(lines: list[bytes], tmp_path: Path) -> Path:
    path = tmp_path / "papers.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.writelines(lines)
    return path


def test_the_sqlite_ceiling_holds_every_paper_and_a_searchable_fts5_index(
    lines: list[bytes], tmp_path: Path
) -> None:
    row = ceiling_sqlite(lines, tmp_path / "ceiling.db")
    assert row.papers == 300 and row.seconds > 0
    word = max(orjson.loads(lines[0])["title"].split(), key=len).strip(".,:;()")
    conn = sqlite3.connect(tmp_path / "ceiling.db")
    try:
        assert conn.execute("SELECT count(*) FROM p").fetchone() == (300,)
        hits = conn.execute("SELECT count(*) FROM p_fts WHERE p_fts MATCH ?", (f'"{word}"',))
        assert hits.fetchone()[0] >= 1
    finally:
        conn.close()


def test_the_postgres_ceiling_computes_the_tsvector_and_builds_the_gin_index(
    lines: list[bytes], pg_admin_url: str
) -> None:
    with pg_database(pg_admin_url, f"papershelf_t_{uuid.uuid4().hex[:12]}") as url:
        row = ceiling_postgres(lines, url)
        with psycopg.connect(url) as conn:
            filled = conn.execute("SELECT count(search_vector) FROM bare_s").fetchone()
            gin = conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'bare_s'"
                " AND indexdef LIKE '%USING gin (search_vector)%'"
            ).fetchone()
    assert filled == (300,) and gin == (1,)
    assert row.papers == 300 and float(row.extra["gin_build_s"]) > 0  # type: ignore[arg-type]


@pytest.mark.parametrize("bulk", [True, False])
def test_both_import_paths_land_every_paper_with_the_index_built(
    source: Path, tmp_path: Path, bulk: bool
) -> None:
    row, engine = full_import("import", f"sqlite:///{tmp_path / 'store.db'}", source, bulk=bulk)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM papers").scalar() == 300
            assert conn.exec_driver_sql("SELECT count(*) FROM papers_fts_pending").scalar() == 0
        assert row.papers == 300
        assert ("index_build_s" in row.extra) is bulk
        tantivy = fulltext_build(engine, row.papers, tmp_path / "ft")
        assert float(tantivy.extra["index_mb"]) > 0  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_a_scale_run_reports_disk_and_memory_on_each_database(
    lines: list[bytes], tmp_path: Path, pg_admin_url: str
) -> None:
    sqlite_row = scale_run(lines, 1500, tmp_path)
    with pg_database(pg_admin_url, f"papershelf_t_{uuid.uuid4().hex[:12]}") as url:
        pg_row = scale_run(lines, 1500, tmp_path, url)
    for row in (sqlite_row, pg_row):
        assert row.papers == 1500
        assert float(row.extra["peak_rss_mb"]) >= float(row.extra["rss_start_mb"]) > 0  # type: ignore[arg-type]
        assert float(row.extra["db_mb"]) > 0  # type: ignore[arg-type]
        assert float(row.extra["p50_ms"]) > 0  # type: ignore[arg-type]
    assert float(pg_row.extra["database_mb"]) >= float(pg_row.extra["store_tables_mb"])  # type: ignore[arg-type]
    assert "SQLite" in sqlite_row.name and "PostgreSQL" in pg_row.name


def test_the_median_run_is_reported_with_all_its_times() -> None:
    rows = Rows()
    rows.append(median_row([Row("x", 10, 3.0), Row("x", 10, 1.0), Row("x", 10, 2.0)]))
    assert rows[0].seconds == 2.0 and rows[0].extra["all_s"] == [3.0, 1.0, 2.0]
