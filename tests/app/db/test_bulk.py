"""The bulk import path: COPY and set-based merges on PostgreSQL, the search index built once
after a large load on both databases. It must leave exactly what the row-by-row path
leaves, every table row by row."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DataError

from app.db import bulk, store
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.importer import bulk_load, import_file, search_index
from app.ingest.formats import read_file
from app.search.backend import search_papers

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# The columns a reader sees, in a stable order; stored_at and changed_at say when a row was
# written, which differs between any two runs.
TABLES = {
    "papers": "pk, arxiv_id, version, title, abstract, CAST(authors AS text), primary_category,"
    " CAST(categories AS text), CAST(classes AS text), comments, journal_ref, doi, license,"
    " first_submitted_at, last_updated_at, announced_on, sort_date, title_key, content_hash",
    "paper_versions": "arxiv_id, version, submitted_at, size",
    "paper_categories": "category, arxiv_id",
    "announcements": "category, day, arxiv_id, kind, position",
    "paper_revisions": "arxiv_id, version, title, abstract, CAST(authors AS text), comments,"
    " journal_ref",
    "paper_links": "arxiv_id, has_code, CAST(links AS text), venue, venue_key",
}
ORDER = {
    "papers": "pk",
    "paper_versions": "arxiv_id, version",
    "paper_categories": "arxiv_id, category",
    "announcements": "arxiv_id, category, day",
    "paper_revisions": "arxiv_id, version",
    "paper_links": "arxiv_id",
}


def kaggle(arxiv_id: str, versions: list[str], **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": arxiv_id,
        "authors": "Ann Lee, Bo Chen",
        "title": f"Paper {arxiv_id}",
        "categories": "cs.LG cs.AI",
        "abstract": f"An abstract about {arxiv_id}.",
        "doi": f"10.1000/{arxiv_id}",
        "versions": [
            {"version": v, "created": f"Mon, {i + 1} Apr 2024 10:00:00 GMT"}
            for i, v in enumerate(versions)
        ],
    }
    row.update(fields)
    return row


def listing(arxiv_id: str, day: str, title: str) -> dict[str, object]:
    return {
        "id": arxiv_id,
        "listing_date": day,
        "title": title,
        "authors": ["Ann Lee"],
        "categories": ["cs.LG", "cs.CL"],
        "abstract": f"Listed abstract of {arxiv_id}.",
    }


def jsonl(path: Path, rows: list[dict[str, object] | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def import_files(tmp_path: Path) -> list[Path]:
    """The fixture snapshot, then a file revising it, then a listing announcing some of it."""
    sample = FIXTURES / "kaggle_sample.jsonl"
    unchanged = sample.read_text().splitlines()[-1]  # 1209.0001 exactly as before
    revisions = jsonl(
        tmp_path / "revisions.jsonl",
        [
            # A newer version that lacks the DOI: the metadata moves on, the DOI stays.
            kaggle("0704.0001", ["v1", "v2", "v3"], title="Diphoton production, revised", doi=None),
            # The same version with another abstract: rewritten.
            kaggle("0704.0002", ["v1", "v2"], abstract="A corrected abstract."),
            # An older version: never overwrites the newer one.
            kaggle("2401.00123", ["v1"], title="An outdated title"),
            unchanged,
            # The same new paper twice, and again on a later page with an older version.
            kaggle("2402.00001", ["v1"]),
            kaggle("2402.00001", ["v1", "v2"], title="Second version"),
            '{"id": "2402.00002", "title": "No abstract: a bad record"}',
            kaggle("2402.00003", ["v1"], categories="cs.CL cs.CL"),
            kaggle("2402.00001", ["v1"], title="Stale copy"),
            kaggle("2402.00004", ["v1"], comments="Accepted"),
        ],
    )
    listed = jsonl(
        tmp_path / "listing.jsonl",
        [
            listing("2402.00001", "2024-04-08", "Second version"),
            listing("2402.00004", "2024-04-09", "Paper 2402.00004"),
            listing("2402.00004", "2024-04-05", "Paper 2402.00004"),
            listing("2508.00001", "2025-08-05", "A paper only the listing has"),
            {"id": "2508.00002", "listing_date": "2025-08-05"},
        ],
    )
    return [sample, revisions, listed, revisions]


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    tables = dict(TABLES)
    if engine.dialect.name == "postgresql":
        tables["papers"] += ", search_vector::text"
    with engine.connect() as conn:
        found = {
            name: [
                tuple(row)
                for row in conn.exec_driver_sql(
                    f"SELECT {columns} FROM {name} ORDER BY {ORDER[name]}"
                )
            ]
            for name, columns in tables.items()
        }
        if engine.dialect.name == "sqlite":
            # What FTS5 indexed, per row: each document's token counts per column.
            found["papers_fts_docsize"] = [
                tuple(r)
                for r in conn.exec_driver_sql("SELECT * FROM papers_fts_docsize ORDER BY id")
            ]
    return found


def reports(engine: Engine, files: list[Path], *, copy: bool) -> list[dict[str, object]]:
    out = []
    for path in files:
        report = import_file(engine, path, batch_size=3, copy=copy)
        out.append({k: v for k, v in report.to_json().items() if k != "path"})
    return out


@pytest.fixture
def second_engine(
    engine: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Engine]:
    """Another fresh store of the same kind as `engine`."""
    if engine.dialect.name == "sqlite":
        other = make_engine(f"sqlite:///{tmp_path / 'second.db'}")
        upgrade(str(other.url))
        yield other
        other.dispose()
        return
    pg_admin_url = request.getfixturevalue("pg_admin_url")
    name = f"papershelf_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{pg_admin_url.rsplit('/', 1)[0]}/{name}"
    upgrade(url)
    other = make_engine(url)
    yield other
    other.dispose()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_bulk_path_leaves_what_the_row_path_leaves(
    engine: Engine, second_engine: Engine, tmp_path: Path
) -> None:
    files = import_files(tmp_path)
    # Row by row, the index maintained page by page: the reference.
    expected = reports(second_engine, files, copy=False)
    # COPY and set-based merges (PostgreSQL), the index set aside and built after the load.
    with bulk_load(engine, defer_index=True):
        got = reports(engine, files, copy=True)

    assert got == expected
    # Bad records are reported with their file and line, their neighbours kept.
    assert got[1]["errors"] == ["revisions.jsonl:7: record 2402.00002 missing field 'abstract'"]
    assert [e.split(": ")[0] for e in got[2]["errors"]] == ["listing.jsonl:5"]  # type: ignore[union-attr]
    want = snapshot(second_engine)
    have = snapshot(engine)
    assert have.keys() == want.keys()
    for table in want:
        assert have[table] == want[table], table
    # The rules held (not merely the same on both): spot checks a reader would notice.
    papers = {row[1]: row for row in have["papers"]}
    assert papers["0704.0001"][2:4] == (3, "Diphoton production, revised")
    assert papers["0704.0001"][11] == "10.1103/PhysRevD.76.013009"  # the DOI was kept
    assert papers["2401.00123"][2] == 3  # the older record did not overwrite
    assert papers["2402.00001"][3] == "Second version"
    assert str(papers["2508.00001"][15]) == "2025-08-05"  # announced_on, from the listing
    # The replaced texts were kept under the versions they had, and only those.
    revisions = {(row[0], row[1]): row for row in have["paper_revisions"]}
    assert revisions[("0704.0001", 2)][2].startswith("Calculation of prompt diphoton")
    assert ("2401.00123", 1) not in revisions and ("0704.0002", 2) not in revisions
    days = {str(row[1]) for row in have["announcements"] if row[2] == "2402.00004"}
    assert days == {"2024-04-05", "2024-04-09"}  # both listings of the paper kept
    with engine.connect() as conn:
        assert not search_index(engine).pending(conn)
        found = search_papers(conn, "diphoton", engine="database").hits
    assert [hit.arxiv_id for hit in found] == ["0704.0001"]


def test_importing_the_same_file_again_changes_nothing(pg_engine: Engine, tmp_path: Path) -> None:
    path = import_files(tmp_path)[1]
    first = import_file(pg_engine, path, batch_size=3)
    before = snapshot(pg_engine)
    again = import_file(pg_engine, path, batch_size=3)
    assert (first.inserted, first.updated) == (7, 0)  # the stale copy changed nothing
    assert (again.inserted, again.updated, again.announcements) == (0, 0, 0)
    assert again.unchanged == 8  # nine records, two of one paper on one page
    assert snapshot(pg_engine) == before


def test_a_refused_value_fails_only_its_record_on_the_copy_path(
    pg_engine: Engine, tmp_path: Path
) -> None:
    path = jsonl(
        tmp_path / "k.jsonl",
        [
            kaggle("2402.00001", ["v1"]),
            kaggle("2402.00002", ["v99999999999"]),  # beyond PostgreSQL's integer
            kaggle("2402.00003", ["v1"]),
        ],
    )
    prepared = store.prepare([p for page in read_file(path) for p in page.papers], "postgresql")
    with pytest.raises(DataError), pg_engine.begin() as conn:
        bulk.write(conn, prepared)
    with pg_engine.connect() as conn:  # the failed page left nothing behind
        assert conn.exec_driver_sql("SELECT count(*) FROM papers").scalar() == 0

    report = import_file(pg_engine, path)
    assert report.inserted == 2
    assert [(e.line, e.record) for e in report.errors] == [(2, "2402.00002")]


def test_a_deferred_index_is_built_as_the_migration_builds_it(engine: Engine) -> None:
    index = search_index(engine)
    with engine.connect() as conn:
        before = _index_definition(conn, engine)
    with bulk_load(engine, defer_index=True), engine.connect() as conn:
        assert index.pending(conn)
    with engine.connect() as conn:
        assert not index.pending(conn)
        assert _index_definition(conn, engine) == before
    # `papershelf reindex` finishes a pending build too (app.reindex: the store's deferred
    # indexes, then the search index's rebuild).
    with engine.begin() as conn:
        index.defer(conn)
        if engine.dialect.name == "postgresql":
            bulk.defer_indexes(conn)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            assert bulk.complete_indexes(conn)
        index.rebuild(conn)
    with engine.connect() as conn:
        assert not index.pending(conn)
        assert _index_definition(conn, engine) == before


def _index_definition(conn, engine: Engine) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    if engine.dialect.name == "postgresql":
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'papers' ORDER BY 1"
    else:
        query = "SELECT type, name, sql FROM sqlite_master WHERE name LIKE 'papers_fts%' ORDER BY 2"
    # Whitespace aside: SQLite keeps each statement's text as it was written.
    return [tuple(" ".join(str(v).split()) for v in r) for r in conn.exec_driver_sql(query)]
