"""The request's read connection (`app.web.deps.get_conn`)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from psycopg.pq import TransactionStatus

from app.db.engine import make_engine
from app.web.deps import get_conn


def test_postgresql_reads_leave_no_transaction_open(pg_engine: sa.Engine) -> None:
    """Each read is its own statement: no BEGIN before it, no idle transaction after it
    (what a session in a transaction holds back: VACUUM, and a round trip each way)."""
    reader = get_conn(pg_engine)
    conn = next(reader)
    assert conn.scalar(sa.text("SELECT 1")) == 1
    raw = conn.connection.dbapi_connection
    assert raw is not None and raw.info.transaction_status == TransactionStatus.IDLE
    reader.close()
    # Back in the pool, the connection is what any other user of the engine expects.
    with pg_engine.connect() as other:
        other.scalar(sa.text("SELECT 1"))
        raw = other.connection.dbapi_connection
        assert raw is not None and raw.info.transaction_status == TransactionStatus.INTRANS


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_reads_see_what_was_committed_before_each_statement(
    backend: str, request: pytest.FixtureRequest
) -> None:
    engine = request.getfixturevalue("sqlite_engine" if backend == "sqlite" else "pg_engine")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))
    reader = get_conn(engine)
    conn = next(reader)
    assert conn.scalar(sa.text("SELECT count(*) FROM t")) == 0
    writer = make_engine(engine.url.render_as_string(hide_password=False))
    with writer.begin() as w:
        w.execute(sa.text("INSERT INTO t VALUES (1)"))
    writer.dispose()
    assert conn.scalar(sa.text("SELECT count(*) FROM t")) == 1
    reader.close()
