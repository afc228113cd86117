"""`papershelf db …`: the schema (Alembic) verbs, and `open_engine`, how every other verb
reaches the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from app.cli.console import fail, out
from app.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

# SQLAlchemy and Alembic are imported inside the functions: loading them at start-up would
# double the time `papershelf --help` and every `papershelf up` child take to start.

db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)


def open_engine(*, migrate: bool = True) -> Engine:
    """The configured store, migrated to head first unless `migrate` is off; an unreachable
    or broken database fails the command with its first error line."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db.engine import get_engine
    from app.db.migrate import upgrade

    settings = get_settings()
    try:
        engine = get_engine(settings)
        if migrate:
            upgrade(settings.database_url_resolved)
    except SQLAlchemyError as exc:
        raise fail(
            f"database {settings.database_url_resolved!r}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    return engine


@db_cli.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db.migrate import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(settings.database_url_resolved, revision)
        if revision == "head":
            from app.db.engine import get_engine
            from app.importer import complete_search_index

            # An import killed midway may owe the database's search index its build.
            if complete_search_index(get_engine(settings)):
                out.print("finished the search index build an interrupted import left owed")
    except SQLAlchemyError as exc:
        raise fail(
            f"database {settings.database_url_resolved!r}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    out.print(f"database at {revision}")


@db_cli.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (`base` empties the schema)."""
    from app.db.migrate import downgrade

    downgrade(get_settings().database_url_resolved, revision)
    out.print(f"database at {revision}")


@db_cli.command("current")
def db_current() -> None:
    """Print the schema revision the database is at."""
    from app.db.migrate import current

    out.print(current(open_engine(migrate=False)) or "base (empty)")
