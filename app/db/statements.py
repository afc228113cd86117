"""Statement helpers every writer of the store shares: the dialect's own INSERT (where
`ON CONFLICT` lives) and id lists cut under the bind-parameter limit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")

# Ids per IN list (or rows per multi-row VALUES): far under SQLite's bind-parameter limit
# (32766), and small enough to keep PostgreSQL's plans cheap.
CHUNK = 500


def insert(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for `table` in the connection's dialect, so `.on_conflict_do_update` /
    `.on_conflict_do_nothing` and `.excluded` are available (SQLite and PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {conn.dialect.name!r}")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
