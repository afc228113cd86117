"""File imports on both databases: dirty text is cleaned, never a reason to lose a batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, select

from app.db.models import Paper, VenuePaper
from app.importer import expected_papers, import_file, search_index, should_defer_index
from app.search.backend import search_papers


def listing_line(arxiv_id: str, title: str, abstract: str = "An abstract.") -> dict[str, object]:
    return {
        "id": arxiv_id,
        "listing_date": "2025-08-05",
        "title": title,
        "authors": ["Ann Lee"],
        "categories": ["cs.CL"],
        "abstract": abstract,
    }


def test_import_with_nul_and_control_characters_keeps_every_valid_record(
    engine: Engine, tmp_path: Path
) -> None:
    rows = [
        listing_line("2508.00001", "Clean neighbour before"),
        listing_line("2508.00002", "Title with a NUL\x00 inside"),
        listing_line("2508.00003", "Control\x02 characters", "Abstract\x01 with \x1f them\x00."),
        {"id": "2508.00004", "title": "No abstract, so not a record"},
        listing_line("2508.00005", "Clean neighbour after"),
    ]
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    # Small pages, so the dirty records share a transaction with clean ones.
    report = import_file(engine, path, batch_size=2)

    assert report.failed is None
    assert report.papers == report.inserted == 4
    assert [(e.line, e.record) for e in report.errors] == [(4, "2508.00004")]
    with engine.connect() as conn:
        stored = dict(conn.execute(select(Paper.arxiv_id, Paper.title)).all())
        abstract = conn.scalar(select(Paper.abstract).where(Paper.arxiv_id == "2508.00003"))
    assert stored == {
        "2508.00001": "Clean neighbour before",
        "2508.00002": "Title with a NUL inside",
        "2508.00003": "Control characters",
        "2508.00005": "Clean neighbour after",
    }
    assert abstract == "Abstract with them."


def test_venue_import_with_nul_and_control_characters(engine: Engine, tmp_path: Path) -> None:
    rows = [
        {"id": "p1", "title": "Clean", "author": "A; B"},
        {
            "id": "p2",
            "title": "N\x00UL",
            "author": "C\x00; D",
            "abstract": "x\x02y",
            "tldr": "\x00",
        },
        {"id": "p3", "title": "Also clean"},
    ]
    path = tmp_path / "demo2024.json"
    path.write_text(json.dumps(rows))

    report = import_file(engine, path, venue="demo2024")

    assert report.failed is None and report.venue_papers == 3 and report.errors == []
    with engine.connect() as conn:
        got = conn.execute(
            select(
                VenuePaper.venue_paper_id,
                VenuePaper.title,
                VenuePaper.authors,
                VenuePaper.abstract,
                VenuePaper.tldr,
            ).order_by(VenuePaper.venue_paper_id)
        ).all()
    assert [tuple(r) for r in got] == [
        ("p1", "Clean", ["A", "B"], None, None),
        ("p2", "NUL", ["C", "D"], "xy", None),
        ("p3", "Also clean", [], None, None),
    ]


def kaggle_line(arxiv_id: str, version: str = "v1") -> str:
    row = {
        "id": arxiv_id,
        "authors": "Ann Lee",
        "title": f"Paper {arxiv_id}",
        "categories": "cs.LG",
        "abstract": "An abstract.",
        "versions": [{"version": version, "created": "Mon, 2 Apr 2007 19:18:42 GMT"}],
    }
    return json.dumps(row) + "\n"


def test_a_value_the_database_refuses_costs_only_its_record(engine: Engine, tmp_path: Path) -> None:
    # PostgreSQL refuses a version beyond its integer range (SQLite stores it): the page is
    # written again record by record, so the neighbours in the same page are kept.
    path = tmp_path / "kaggle.jsonl"
    path.write_text(
        kaggle_line("0704.0001")
        + kaggle_line("0704.0002", "v99999999999")
        + kaggle_line("0704.0003")
    )
    report = import_file(engine, path, batch_size=10)
    assert report.failed is None
    with engine.connect() as conn:
        stored = set(conn.scalars(select(Paper.arxiv_id)))
    assert {"0704.0001", "0704.0003"} <= stored
    if engine.dialect.name == "postgresql":
        assert stored == {"0704.0001", "0704.0003"} and report.inserted == 2
        assert [(e.line, e.record) for e in report.errors] == [(2, "0704.0002")]
        assert "refused" in report.errors[0].message
    else:
        assert len(stored) == 3 and report.errors == []

    # The same for a venue list: a status longer than its column.
    venue_path = tmp_path / "demo2025.json"
    rows = [{"id": "v1", "title": "One"}, {"id": "v2", "title": "Two", "status": "x" * 100}]
    venue_path.write_text(json.dumps([*rows, {"id": "v3", "title": "Three"}]))
    report = import_file(engine, venue_path, venue="demo2025")
    assert report.failed is None
    with engine.connect() as conn:
        ids = set(conn.scalars(select(VenuePaper.venue_paper_id)))
    assert {"v1", "v3"} <= ids
    if engine.dialect.name == "postgresql":
        assert ids == {"v1", "v3"} and report.venue_papers == 2
        assert [e.record for e in report.errors] == ["v2"]


def _stored(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(sql).scalar() or 0)


def _papershelf(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the parsing child dies with it
    )


def test_an_import_killed_midway_serves_and_its_index_is_built_later(
    engine: Engine, tmp_path: Path, shared_data: Path
) -> None:
    source = shared_data / "arxiv" / "papers_cs_2025-08-05_2026-07-01.jsonl.gz"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env.update(
        PAPERSHELF_DATABASE_URL=engine.url.render_as_string(hide_password=False),
        PAPERSHELF_DATA_DIR=str(tmp_path / "data"),
    )
    # A load this large into an empty store builds the search index after the load.
    load = _papershelf(env, "import", str(source), "--batch-size", "500")
    deadline = time.monotonic() + 300
    while _stored(engine, "SELECT count(*) FROM papers") < 2000:
        assert load.poll() is None, load.stderr.read() if load.stderr else load.returncode
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(load.pid, signal.SIGKILL)
    load.wait()

    stored = _stored(engine, "SELECT count(*) FROM papers")
    assert 2000 <= stored < 49_866
    # Committed pages stay whole: every stored paper has its categories and announcements.
    for table in ("paper_categories", "announcements"):
        orphans = _stored(
            engine,
            "SELECT count(*) FROM papers p WHERE NOT EXISTS"
            f" (SELECT 1 FROM {table} t WHERE t.arxiv_id = p.arxiv_id)",
        )
        assert orphans == 0, table
    index = search_index(engine)
    with engine.connect() as conn:
        assert index.pending(conn)
        first = conn.execute(select(Paper.arxiv_id, Paper.title).order_by(Paper.pk)).first()
        assert first is not None
        word = max(first.title.split(), key=len).strip(".,:;()")
        # The store answers searches meanwhile (PostgreSQL scans without its GIN index;
        # SQLite's FTS5 index holds what it held before the load).
        search_papers(conn, word, engine="database")

    # The next import, a small one, completes the build before its own pages.
    small = _papershelf(
        env, "import", str(Path(__file__).parents[1] / "fixtures" / "kaggle_sample.jsonl")
    )
    assert small.wait(timeout=300) == 0, small.stderr.read() if small.stderr else ""
    with engine.connect() as conn:
        assert not index.pending(conn)
        hits = search_papers(conn, word, engine="database", limit=1000).hits
    assert first.arxiv_id in {hit.arxiv_id for hit in hits}
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO papers_fts(papers_fts) VALUES ('integrity-check')")
    else:
        indexes = _stored(
            engine, "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_papers_search_vector'"
        )
        assert indexes == 1


def test_only_a_load_large_against_the_store_defers_its_index(
    engine: Engine, tmp_path: Path
) -> None:
    assert not should_defer_index(engine, 5_000, 0.25)  # a small file: page by page
    assert should_defer_index(engine, 20_000, 0.25)  # into an empty store: after the load
    import_file(engine, Path(__file__).parents[1] / "fixtures" / "kaggle_sample.jsonl")
    assert should_defer_index(engine, 20_000, 0.25)
    assert not should_defer_index(engine, 20_000, 5_000)  # under 5,000 x the 6 stored
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"x" * 1800 * 30_000)
    assert expected_papers([big]) == 30_000


def test_a_large_load_into_postgresql_leaves_planner_statistics(pg_engine: Engine) -> None:
    """Without statistics PostgreSQL plans a day's page as a sort of the whole category; a
    bulk load ends with ANALYZE so the first readers do not pay for it."""
    from app.importer import bulk_load

    def analyzed() -> bool:
        with pg_engine.connect() as conn:
            return bool(
                conn.exec_driver_sql(
                    "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables"
                    " WHERE relname = 'papers'"
                ).scalar()
            )

    assert not analyzed()
    with bulk_load(pg_engine, defer_index=True):
        import_file(pg_engine, Path(__file__).parents[1] / "fixtures" / "kaggle_sample.jsonl")
    assert analyzed()
