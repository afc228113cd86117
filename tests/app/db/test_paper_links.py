"""Badges are derived when the store writes a paper (row by row and through PostgreSQL's COPY
path alike) and back-filled by migration 0013 for papers stored before it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.db import bulk, store
from app.db.migrate import downgrade, upgrade
from app.db.models import PaperLink
from app.ingest.records import AnnounceKind, PaperRecord
from app.ingest.records import Announcement as Ann

links_t = PaperLink.__table__
DAY = date(2026, 7, 1)


def record(arxiv_id: str, version: int = 1, **kw: Any) -> PaperRecord:
    fields: dict[str, Any] = {
        "title": f"A study of {arxiv_id}",
        "abstract": "We study things.",
        "authors": ["Ada Lovelace"],
        "primary_category": "cs.CL",
        "categories": ["cs.CL"],
        "version": version,
        "first_submitted_at": datetime(2026, 6, 29, 12, tzinfo=UTC),
        "announcements": [Ann("cs.CL", DAY, AnnounceKind.NEW, 1)],
    }
    fields.update(kw)
    return PaperRecord(arxiv_id=arxiv_id, **fields)


def badges(engine: Engine) -> dict[str, tuple[bool, list[str], str | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(links_t).order_by(links_t.c.arxiv_id)).all()
    return {
        r.arxiv_id: (bool(r.has_code), [x["url"] for x in r.links], r.venue, r.venue_key)
        for r in rows
    }


FIRST = [
    record(
        "2607.00001",
        abstract="Code: https://github.com/ada/engine. Data at https://zenodo.org/records/1.",
        comments="Accepted at ICLR 2026 (oral)",
    ),
    record("2607.00002", comments="Accepted by NeurIPS 2025 MTI-LLM Workshop"),
    record("2607.00003"),  # nothing to show: no row
]
SECOND = [
    # v2 drops the code link; its source gives no comments, so the stored ones (and their
    # venue) stay.
    record("2607.00001", version=2, abstract="We study things, better.", comments=None),
    # v2 gains a code link.
    record("2607.00003", version=2, abstract="Now with code: github.com/x/y."),
]
AFTER_FIRST = {
    "2607.00001": (
        True,
        ["https://github.com/ada/engine", "https://zenodo.org/records/1"],
        "ICLR 2026 Oral",
        "iclr2026",
    ),
    "2607.00002": (False, [], "NeurIPS 2025 Workshop", None),
}
AFTER_SECOND = {
    "2607.00001": (False, [], "ICLR 2026 Oral", "iclr2026"),
    "2607.00002": (False, [], "NeurIPS 2025 Workshop", None),
    "2607.00003": (True, ["https://github.com/x/y"], None, None),
}


def test_the_store_derives_badges_from_what_it_writes(engine: Engine) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, FIRST)
    assert badges(engine) == AFTER_FIRST
    with engine.begin() as conn:
        store.upsert_papers(conn, SECOND)
    assert badges(engine) == AFTER_SECOND
    # Writing the same again changes nothing.
    with engine.begin() as conn:
        counts = store.upsert_papers(conn, SECOND)
    assert counts.unchanged == 2
    assert badges(engine) == AFTER_SECOND


@pytest.mark.postgres
def test_a_paper_stored_by_a_concurrent_writer_keeps_one_badge_row(engine: Engine) -> None:
    """Two categories' fetches cross-list the same paper: the second writer read it as new,
    then the first committed it (badges and all) before the second wrote."""
    paper = FIRST[0]
    raced = False

    def other_writer_commits_first(conn, cursor, statement, *args: object) -> None:  # type: ignore[no-untyped-def]
        nonlocal raced
        if not raced and statement.startswith("INSERT INTO papers"):
            raced = True
            other = sa.create_engine(engine.url)  # its own connection and transaction
            with other.begin() as c:
                store.upsert_papers(c, [paper])
            other.dispose()

    sa.event.listen(engine, "before_cursor_execute", other_writer_commits_first)
    try:
        with engine.begin() as conn:
            store.upsert_papers(conn, [paper])
    finally:
        sa.event.remove(engine, "before_cursor_execute", other_writer_commits_first)
    assert raced
    assert badges(engine)["2607.00001"][1] == [
        "https://github.com/ada/engine",
        "https://zenodo.org/records/1",
    ]


def test_the_copy_path_derives_the_same_badges(pg_engine: Engine) -> None:
    for batch in (FIRST, SECOND):
        with pg_engine.begin() as conn:
            bulk.write(conn, store.prepare(batch, "postgresql"))
    assert badges(pg_engine) == AFTER_SECOND


def test_a_batch_split_for_retries_keeps_each_papers_badges() -> None:
    prepared = store.prepare(FIRST, "sqlite")
    parts = prepared.split()
    assert [list(p.links) for p in parts] == [["2607.00001"], ["2607.00002"], []]


def test_the_migration_backfills_papers_stored_before_it(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        store.upsert_papers(conn, FIRST)
    downgrade(url, "0012")
    upgrade(url)
    assert badges(engine) == AFTER_FIRST
