"""The admin CLI end to end: real files in, the store and the exit codes a user sees."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.settings import get_settings

LISTING = "arxiv/papers_cs_2025-08-05_2026-07-01.jsonl.gz"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(data_dir))
    monkeypatch.delenv("PAPERSHELF_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield data_dir
    get_settings.cache_clear()


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def sample(shared_data: Path, tmp_path: Path) -> Path:
    """The first 300 real papers of the listing file."""
    path = tmp_path / "sample.jsonl"
    with gzip.open(shared_data / LISTING, "rt") as src:
        path.write_text("".join(next(src) for _ in range(300)))
    return path


def stats_json() -> dict:  # type: ignore[type-arg]
    result = run("stats", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_import_then_stats_and_search(env: Path, sample: Path) -> None:
    result = run("import", str(sample))
    assert result.exit_code == 0, result.output
    assert "300 new" in result.output
    s = stats_json()
    assert s["papers"] == 300
    assert s["announcements"] >= 300

    first = json.loads(sample.read_text().splitlines()[0])
    hits = json.loads(run("search", f'ti:"{first["title"]}"', "--json").output)["hits"]
    assert hits[0]["arxiv_id"] == first["id"]


def test_import_twice_changes_nothing(env: Path, sample: Path) -> None:
    assert run("import", str(sample)).exit_code == 0
    before = stats_json()
    second = run("import", str(sample), "--json")
    report = json.loads(second.output)[0]
    assert (report["inserted"], report["updated"], report["unchanged"]) == (0, 0, 300)
    assert report["announcements"] == 0
    assert stats_json() == before


def test_bad_line_is_skipped_and_named(env: Path, sample: Path, tmp_path: Path) -> None:
    lines = sample.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], '{"id": "2607.0', lines[1]]) + "\n")
    result = CliRunner().invoke(cli, ["import", str(broken)])
    assert result.exit_code == 3
    assert "broken.jsonl:2" in result.output
    assert stats_json()["papers"] == 2


def test_unreadable_document_writes_nothing(env: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "feed.xml"
    truncated.write_text(
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv'
    )
    result = CliRunner().invoke(cli, ["import", str(truncated)])
    assert result.exit_code == 1
    assert "feed.xml" in result.output
    assert stats_json()["papers"] == 0


def test_missing_file_is_a_clear_error(env: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["import", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1
    assert "no such file" in result.output


def test_venue_import_links_to_arxiv(env: Path, shared_data: Path, tmp_path: Path) -> None:
    venue_file = shared_data / "venues/paperlists/iclr2017.json.gz"
    papers = json.loads(gzip.decompress(venue_file.read_bytes()))
    # An arXiv listing that carries one venue paper's title (with different case/spacing).
    listing = tmp_path / "listing.jsonl"
    listing.write_text(
        json.dumps(
            {
                "id": "1611.01578",
                "listing_date": "2016-11-07",
                "title": "  " + papers[0]["title"].upper() + " ",
                "authors": ["Someone"],
                "categories": ["cs.LG"],
                "comment": None,
                "abstract": "An abstract.",
            }
        )
        + "\n"
    )
    assert run("import", str(listing)).exit_code == 0
    result = CliRunner().invoke(cli, ["import", "--venue", "iclr2017", str(venue_file)])
    # One real ICLR 2017 entry has no title: it is skipped and named, the rest imported.
    untitled = [p for p in papers if not (p.get("title") or "").strip()]
    assert result.exit_code == (3 if untitled else 0), result.output
    for p in untitled:
        assert f"record {p['id']}" in result.output
    venues = stats_json()["venues"]
    assert venues["iclr2017"]["papers"] == len(papers) - len(untitled)
    assert venues["iclr2017"]["linked_to_arxiv"] == 1


def test_reindex_keeps_search_working(env: Path, sample: Path) -> None:
    assert run("import", str(sample)).exit_code == 0
    before = run("search", "language model", "--json").output
    result = run("reindex")
    assert result.exit_code == 0, result.output
    assert run("search", "language model", "--json").output == before


def test_db_commands(env: Path) -> None:
    assert run("db", "upgrade").exit_code == 0
    from alembic.script import ScriptDirectory

    from app.db.migrate import alembic_config

    # The newest migration, whichever it is (several are added side by side).
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head and head in run("db", "current").output
    assert run("db", "downgrade", "base").exit_code == 0
    assert "base" in run("db", "current").output


@pytest.mark.slow
def test_full_real_listing_console_script(env: Path, shared_data: Path) -> None:
    """The installed entry point on the whole 50k-paper file."""
    cmd = [sys.executable, "-m", "app.cli"]
    done = subprocess.run(
        [*cmd, "import", str(shared_data / LISTING)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    s = json.loads(
        subprocess.run([*cmd, "stats", "--json"], capture_output=True, text=True, check=True).stdout
    )
    assert s["papers"] == 49_866
    assert s["days"] == 221


def test_fetch_now_and_status(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`papershelf fetch CATEGORY --now` runs the worker's job here; `status` reports it."""
    from datetime import UTC, datetime, timedelta

    from tests.fakes.arxiv_server import FakeArxiv, FakePaper

    with FakeArxiv() as fake:
        fake.add_papers(
            [
                FakePaper(
                    arxiv_id="2611.01234",
                    title="Wombat attention for long documents",
                    abstract="We propose wombat attention.",
                    authors=["A. Author"],
                    categories=["cs.CL"],
                    versions=[datetime.now(UTC) - timedelta(days=1)],
                )
            ]
        )
        for key, value in {
            "ARXIV_RSS_URL": fake.url,
            "ARXIV_API_URL": fake.api_url,
            "ARXIV_OAI_URL": fake.oai_url,
            "ARXIV_MIN_INTERVAL": "0",
            "CATEGORIES": "cs.CL",
            "REDIS_URL": os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        }.items():
            monkeypatch.setenv(f"PAPERSHELF_{key}", value)
        get_settings.cache_clear()
        result = CliRunner().invoke(cli, ["fetch", "cs.CL", "--now"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["inserted"] == 1
        by_id = CliRunner().invoke(cli, ["fetch", "arXiv:2611.01234v1", "--now"])
        assert by_id.exit_code == 0, by_id.output
    s = json.loads(run("status", "--json").output)
    assert s["categories"]["cs.CL"]["check"]["complete"] is True
    assert s["last_ok"]["kind"] == "ids"
    assert "cs.CL" in run("status").output


def test_fetch_rejects_what_is_neither_category_nor_id(env: Path) -> None:
    result = CliRunner().invoke(cli, ["fetch", "cs.NOPE"])
    assert result.exit_code == 1
    assert "neither a known category nor arXiv ids" in result.output
    bad_date = CliRunner().invoke(cli, ["fetch", "cs.CL", "--date", "2026-02-30"])
    assert bad_date.exit_code == 1 and "invalid date" in bad_date.output


def test_truncated_gzip_keeps_whole_pages_and_says_so(
    env: Path, sample: Path, tmp_path: Path
) -> None:
    """A file cut short mid-stream: pages before the cut are committed whole, the rest is
    not written, and the message says exactly that."""
    compressed = gzip.compress(sample.read_bytes())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(compressed[: len(compressed) * 2 // 3])
    result = CliRunner().invoke(cli, ["import", "--batch-size", "50", str(cut)])
    assert result.exit_code == 1
    assert "corrupt gzip stream" in result.output
    stored = stats_json()["papers"]
    assert stored > 0 and stored % 50 == 0  # only whole pages
    assert f"the {stored} records before that point were imported" in result.output
    # Re-importing the intact file completes it without duplicates.
    assert run("import", str(sample)).exit_code == 0
    assert stats_json()["papers"] == 300


def test_fetch_enqueues_once_and_needs_a_queue(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    no_redis = CliRunner().invoke(cli, ["fetch", "cs.CL"])
    assert no_redis.exit_code == 1 and "no Redis is configured" in no_redis.output
    monkeypatch.setenv(
        "PAPERSHELF_REDIS_URL",
        os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    monkeypatch.setenv("PAPERSHELF_FETCH_QUEUE", f"papershelf-test:fetch:{uuid.uuid4().hex}")
    get_settings.cache_clear()
    first = run("fetch", "2401.00001,2401.00002")
    assert first.exit_code == 0 and "queued fetch_ids" in first.output
    again = run("fetch", "2401.00002,arXiv:2401.00001v3")  # same ids, other spelling
    assert "already queued" in again.output


def test_db_upgrade_finishes_an_index_build_an_interrupted_import_owed(
    env: Path, sample: Path
) -> None:
    from sqlalchemy import select

    from app.db.engine import get_engine
    from app.db.models import Paper
    from app.importer import bulk_load, import_file, search_index
    from app.search.backend import search_papers

    assert run("db", "upgrade").exit_code == 0
    engine = get_engine(get_settings())
    with pytest.raises(KeyboardInterrupt), bulk_load(engine, defer_index=True):
        import_file(engine, sample)
        raise KeyboardInterrupt  # the import stops before its index is built
    with engine.connect() as conn:
        assert search_index(engine).pending(conn)
        title = conn.scalars(select(Paper.title).order_by(Paper.pk)).first()
    assert title is not None

    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "finished the search index build" in result.output
    with engine.connect() as conn:
        assert not search_index(engine).pending(conn)
        hits = search_papers(conn, f'ti:"{title}"', engine="database").hits
    assert hits and hits[0].title == title
    # Nothing owed: a second upgrade says nothing about it.
    assert "search index build" not in run("db", "upgrade").output
