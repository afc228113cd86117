"""The search index's owner per database (app.search.backend.index_for)."""

from __future__ import annotations

import pytest

from app.search.backend import backend_for, index_for
from app.search.postgres import PostgresIndex
from app.search.sqlite_fts import SqliteFtsIndex


def test_index_for_each_dialect() -> None:
    assert isinstance(index_for("sqlite"), SqliteFtsIndex)
    assert isinstance(index_for("postgresql"), PostgresIndex)
    assert isinstance(index_for("postgres"), PostgresIndex)
    assert isinstance(backend_for("sqlite", max_results=10).index, SqliteFtsIndex)
    with pytest.raises(ValueError, match="no search backend"):
        index_for("mysql")
