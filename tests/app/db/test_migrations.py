"""Alembic owns the schema: base → head → base works on both databases, and the models
describe exactly what the migrations build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from app.db.engine import make_engine
from app.db.migrate import alembic_config, current, downgrade, include_object, upgrade
from app.db.models import Base

TABLES = {
    "papers",
    "paper_versions",
    "paper_categories",
    "announcements",
    "venues",
    "venue_papers",
    "paper_clicks",
    "fetch_runs",
    "harvest_states",
    "day_checks",
    "paper_keywords",
    "summaries",
    "faqs",
}
# The newest migration, whichever it is (several are added side by side).
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def test_upgrade_downgrade_roundtrip(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        assert current(engine) == HEAD
        assert set(inspect(engine).get_table_names()) >= TABLES
        downgrade(url, "0002")  # one step back: only the related-papers keywords go
        assert current(engine) == "0002"
        assert "paper_keywords" not in inspect(engine).get_table_names()
        assert "fetch_runs" in inspect(engine).get_table_names()
        downgrade(url, "0001")  # and the fetch bookkeeping goes
        assert current(engine) == "0001"
        assert (
            set(inspect(engine).get_table_names())
            & {
                "fetch_runs",
                "harvest_states",
                "day_checks",
            }
            == set()
        )
        assert "papers" in inspect(engine).get_table_names()
        downgrade(url, "base")
        remaining = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert remaining == set()
        upgrade(url)  # and back up again: downgrade left nothing behind that blocks it
        assert current(engine) == HEAD
    finally:
        engine.dispose()


def test_models_match_migrations(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"include_object": include_object, "compare_type": True}
            )
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_search_structures_exist(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        insp = inspect(engine)
        if engine.dialect.name == "sqlite":
            assert "papers_fts" in insp.get_table_names()
        else:
            assert "search_vector" in {c["name"] for c in insp.get_columns("papers")}
    finally:
        engine.dispose()


def test_processes_migrating_a_fresh_database_at_once_all_succeed(url: str, tmp_path: Path) -> None:
    """Several web and worker processes started together each migrate on start: they take
    turns, and every one of them ends with the schema at head (before the lock, one failed
    on the tables the other was creating)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env.update(PAPERSHELF_DATABASE_URL=url, PAPERSHELF_DATA_DIR=str(tmp_path / "data"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    engine = make_engine(url)
    try:
        assert current(engine) == HEAD
    finally:
        engine.dispose()


def test_a_failed_upgrade_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env.update(
        PAPERSHELF_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        PAPERSHELF_DATA_DIR=str(tmp_path / "data"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "OperationalError" in done.stderr + done.stdout
