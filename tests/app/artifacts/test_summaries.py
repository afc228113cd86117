"""The `summaries` table (app.artifacts.summaries) on SQLite and PostgreSQL: what needs a TL;DR, the
idempotent upserts, staleness, and what a card shows; plus migration 0004 on its own."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select

from app.artifacts import summaries
from app.db import store
from app.db.engine import make_engine
from app.db.migrate import current, downgrade, upgrade
from app.db.models import Summary
from app.ingest.records import AnnounceKind, Announcement, PaperRecord, VenuePaperRecord

DAY = date(2026, 7, 1)
T0 = datetime(2026, 7, 2, tzinfo=UTC)


def rec(n: int, version: int | None = 1, cat: str = "cs.CL", day: date = DAY) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2607.{n:05d}",
        title=f"Paper {n}",
        abstract=f"Abstract {n}.",
        authors=["Ada Lovelace"],
        primary_category=cat,
        categories=[cat],
        version=version,
        first_submitted_at=datetime(2026, 6, 28, tzinfo=UTC),
        announcements=[Announcement(cat, day, AnnounceKind.NEW, n)],
    )


def written(
    n: int, version: int | None = 1, model: str = "m1", text: str = ""
) -> summaries.Written:
    return summaries.Written(f"2607.{n:05d}", version, model, text or f"tldr {n}")


def ids(pending: list[summaries.Pending]) -> list[str]:
    return [p.arxiv_id for p in pending]


def rows(engine: Engine) -> dict[str, tuple[int | None, str, str, datetime]]:
    with engine.connect() as conn:
        return {
            # SQLite hands back naive UTC.
            r.arxiv_id: (r.paper_version, r.model_version, r.tldr, r.created_at.replace(tzinfo=UTC))
            for r in conn.execute(select(Summary.__table__))
        }


def test_pending_upsert_and_staleness(engine: Engine) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(1), rec(2), rec(3, version=None), rec(4, cat="cs.LG")])
    with engine.connect() as conn:
        day = summaries.pending_for_day(conn, DAY, "cs.CL", "m1")
        assert ids(day) == ["2607.00001", "2607.00002", "2607.00003"]
        assert day[0] == summaries.Pending("2607.00001", 1, "Paper 1", "Abstract 1.")
        # By id: stored papers only, in the order asked.
        got = summaries.pending_for_ids(conn, ["2607.00004", "9999.99999", "2607.00001"], "m1")
        assert ids(got) == ["2607.00004", "2607.00001"]

    with engine.begin() as conn:
        n = summaries.upsert(conn, [written(1), written(2), written(3, None)], now=T0)
    assert n == 3
    with engine.connect() as conn:
        assert summaries.pending_for_day(conn, DAY, "cs.CL", "m1") == []
        # Another model: everything is stale for it.
        assert len(summaries.pending_for_day(conn, DAY, "cs.CL", "m2")) == 3

    # The same rows again change nothing (not even created_at).
    later = datetime(2026, 7, 3, tzinfo=UTC)
    with engine.begin() as conn:
        assert summaries.upsert(conn, [written(1), written(2)], now=later) == 0
    assert rows(engine)["2607.00001"][3] == T0

    # A new version of paper 2 makes its TL;DR stale; a version now known for paper 3 too.
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(2, version=2), rec(3, version=1)])
    with engine.connect() as conn:
        assert ids(summaries.pending_for_day(conn, DAY, "cs.CL", "m1")) == [
            "2607.00002",
            "2607.00003",
        ]
        counts = summaries.pending_counts(conn, "m1")
        assert counts == summaries.PendingCounts(missing=1, paper_version=2, model_version=0)
        assert summaries.pending_counts(conn, "m2") == summaries.PendingCounts(1, 2, 1)
        # Unknown model: other models' TL;DRs count as current.
        assert summaries.pending_counts(conn, None) == summaries.PendingCounts(1, 2, 0)
        newest_first = list(summaries.pending_ids(conn, "m1"))
        assert set(newest_first) == {"2607.00002", "2607.00003", "2607.00004"}
        assert list(summaries.pending_ids(conn, "m1", limit=1)) == newest_first[:1]

    with engine.begin() as conn:
        assert summaries.upsert(conn, [written(2, 2, text="tldr 2 v2")], now=later) == 1
        # A slow job's TL;DR of the older version never replaces the newer one.
        assert summaries.upsert(conn, [written(2, 1, text="tldr 2 v1 late")], now=later) == 0
    assert rows(engine)["2607.00002"] == (2, "m1", "tldr 2 v2", later)


def test_shown_tldr_prefers_the_authors_and_marks_stale(engine: Engine) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(1, version=2), rec(2), rec(3)])
        summaries.upsert(conn, [written(1, 1), written(2), written(3, text="   ")], now=T0)
        store.upsert_venue(
            conn,
            "iclr2026",
            [
                VenuePaperRecord(
                    venue="iclr2026",
                    venue_paper_id="x",
                    title="Paper 2",
                    authors=["Ada Lovelace"],
                    tldr="The authors' own words.",
                )
            ],
        )
        store.link_venues(conn)
    with engine.connect() as conn:
        shown = summaries.shown_tldrs(conn, ["2607.00001", "2607.00002", "2607.00003"])
    assert shown["2607.00001"] == summaries.ShownTldr("tldr 1", "m1", 1)
    assert shown["2607.00001"].stale(2) and not shown["2607.00001"].stale(1)
    assert shown["2607.00002"] == summaries.ShownTldr("The authors' own words.")
    assert not shown["2607.00002"].stale(5)
    assert "2607.00003" not in shown  # a blank TL;DR is no TL;DR


def test_checkpoint_present(tmp_path: Path) -> None:
    path = tmp_path / "summarizer"
    assert not summaries.checkpoint_present(path)
    path.mkdir()
    (path / ".model.safetensors.tmp").write_bytes(b"half")  # a killed save
    assert not summaries.checkpoint_present(path)
    (path / "config.json").write_text("{}")
    assert summaries.checkpoint_present(path)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def test_migration_0004_up_and_down(url: str) -> None:
    upgrade(url, "0004")
    engine = make_engine(url)
    try:
        assert current(engine) == "0004"
        cols = {c["name"] for c in inspect(engine).get_columns("summaries")}
        assert cols == {"arxiv_id", "paper_version", "model_version", "tldr", "created_at"}
        downgrade(url, "0003")
        assert "summaries" not in inspect(engine).get_table_names()
        assert "paper_keywords" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
