"""Alembic owns the schema: base → head → base works on both databases, and the models
describe exactly what the migrations build."""

from __future__ import annotations

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
