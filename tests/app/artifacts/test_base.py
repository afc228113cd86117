"""The derived artifacts' shared base (app.artifacts.base): batching, and pending selection,
upsert and chunked reads across more ids than one IN list holds."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from app.artifacts.base import ArtifactTable, batched
from app.db import store
from app.db.models import Paper, Summary
from app.db.statements import CHUNK
from app.ingest.records import PaperRecord

papers = Paper.__table__
TABLE = ArtifactTable(Summary.__table__)
T0 = datetime(2026, 7, 2, tzinfo=UTC)


def test_batched_streams_lists() -> None:
    assert list(batched(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


def _paper(n: int) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2607.{n:05d}",
        title=f"Paper {n}",
        abstract=f"Abstract {n}.",
        authors=["Ada Lovelace"],
        primary_category="cs.CL",
        categories=["cs.CL"],
        version=1,
    )


def test_more_ids_than_one_chunk(engine) -> None:  # type: ignore[no-untyped-def]
    n = CHUNK * 2 + 7
    ids = [f"2607.{i:05d}" for i in range(n)]
    with engine.begin() as conn:
        store.upsert_papers(conn, [_paper(i) for i in range(n)])
        missing = TABLE.table.c.arxiv_id.is_(None)
        # Given order kept, duplicates and unknown ids dropped.
        asked = [*reversed(ids), ids[0], "2607.99999"]
        rows = TABLE.pending_for_ids(conn, asked, missing, [papers.c.arxiv_id])
        assert [r.arxiv_id for r in rows] == list(reversed(ids))

        values = [
            {"arxiv_id": i, "paper_version": 1, "model_version": "m", "tldr": i, "created_at": T0}
            for i in ids
        ]

        def update(new, old):  # type: ignore[no-untyped-def]
            return {"tldr": new.tldr}

        def changed(new, old):  # type: ignore[no-untyped-def]
            return old.tldr != new.tldr

        assert TABLE.upsert(conn, values, update=update, where=changed) == n
        assert TABLE.upsert(conn, values, update=update, where=changed) == 0
        assert TABLE.pending_count(conn, missing) == 0
        read = dict(TABLE.rows_for(conn, ids, TABLE.table.c.arxiv_id, TABLE.table.c.tldr))
        assert read == {i: i for i in ids}
        # Newest first; one sort day here, so by id, descending.
        assert list(TABLE.pending_ids(conn, sa.true(), limit=3)) == ids[::-1][:3]
