"""Run Alembic from code, so the CLI and tests need no alembic.ini."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, make_url

from app.db.engine import make_engine

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


# Dialect-specific search structures that the models deliberately do not describe.
SEARCH_OBJECTS = ("papers_fts",)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate filter: ignore the FTS5 tables and the PostgreSQL search column."""
    if type_ == "table" and name and name.startswith(SEARCH_OBJECTS):
        return False
    if type_ == "column" and name == "search_vector":
        return False
    return not (type_ == "index" and name == "ix_papers_search_vector")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on % in passwords.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Any constant works: it names the one lock every Papershelf process takes to migrate.
MIGRATION_LOCK_KEY = 0x7061_7065_7273  # "papers"


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _upgrade_on(conn: Connection, url: str, revision: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = conn
    command.upgrade(config, revision)
    conn.commit()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to `revision`. Processes started together (several web and worker processes
    on a fresh database) take turns: the first migrates, the others then find nothing to do
    — without the lock the second failed on the tables the first was creating."""
    engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                # A session-level advisory lock: held across Alembic's transactions.
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
                conn.commit()
                try:
                    _upgrade_on(conn, url, revision)
                finally:
                    conn.rollback()
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
                    conn.commit()
        else:
            with _sqlite_file_lock(url), engine.connect() as conn:
                _upgrade_on(conn, url, revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
