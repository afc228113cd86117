"""Fetch bookkeeping on SQLite and PostgreSQL: runs, harvest progress and day checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.db import runs, store
from app.db.runs import HarvestState
from app.ingest.records import AnnounceKind, PaperRecord
from app.ingest.records import Announcement as Ann
from app.schedule import ET

T0 = datetime(2026, 7, 7, 0, 10, tzinfo=UTC)  # Monday 20:10 EDT, Tuesday's list is out
DAY = date(2026, 7, 7)


def paper(arxiv_id: str, anns: list[Ann]) -> PaperRecord:
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=f"On {arxiv_id}",
        abstract="We study things.",
        authors=["Ada Lovelace"],
        primary_category=anns[0].category,
        categories=[a.category for a in anns],
        version=1,
        first_submitted_at=datetime(2026, 7, 1, 12, tzinfo=UTC),
        announcements=anns,
    )


def test_start_and_finish_run(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        run_id = runs.start_run(
            conn, kind="rss", source="https://rss.arxiv.org/rss/cs.CL", category="cs.CL",
            day=DAY, job_id="arq:abc", now=T0,
        )  # fmt: skip
        running = runs.get_run(conn, run_id)
    assert running is not None
    assert running["status"] == "running"
    assert running["started_at"] == T0 and running["started_at"].tzinfo is not None
    assert running["finished_at"] is None
    assert (running["fetched"], running["inserted"], running["error"]) == (0, 0, None)

    # A non-UTC instant is stored as the same instant.
    end = (T0 + timedelta(seconds=42)).astimezone(ET)
    with engine.begin() as conn:
        runs.finish_run(
            conn, run_id, status="ok", fetched=10, inserted=7, updated=2, unchanged=1,
            announcements=12, now=end,
        )  # fmt: skip
    with engine.connect() as conn:
        (row,) = runs.recent_runs(conn)
    assert row["pk"] == run_id
    assert row["status"] == "ok"
    assert row["finished_at"] == end
    assert row["finished_at"].utcoffset() == timedelta(0)
    assert (row["fetched"], row["inserted"], row["updated"], row["unchanged"]) == (10, 7, 2, 1)
    assert row["announcements"] == 12
    assert (row["kind"], row["category"], row["day"], row["job_id"]) == (
        "rss",
        "cs.CL",
        DAY,
        "arq:abc",
    )


def test_finish_run_validates(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        run_id = runs.start_run(conn, kind="ids", source="api")
        with pytest.raises(ValueError, match="running"):
            runs.finish_run(conn, run_id, status="running")
        with pytest.raises(LookupError):
            runs.finish_run(conn, run_id + 1000, status="ok")
        with pytest.raises(ValueError, match="naive"):
            runs.start_run(conn, kind="ids", source="api", now=datetime(2026, 7, 7))


def test_failed_run_keeps_a_bounded_error(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        run_id = runs.start_run(conn, kind="rss", source="cs.CV", category="cs.CV")
        runs.finish_run(conn, run_id, status="failed", error="boom " * 10_000)
        row = runs.get_run(conn, run_id)
    assert row is not None
    assert row["status"] == "failed"
    assert row["error"].startswith("boom")
    assert len(row["error"]) == runs.ERROR_MAX_CHARS


def test_counts_add_up_page_by_page_and_finish_keeps_them(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        run_id = runs.start_run(conn, kind="oai-backfill", source="oai", category="cs")
        runs.add_to_run(conn, run_id, fetched=3, inserted=3, announcements=4)
        runs.add_to_run(conn, run_id, fetched=2, inserted=1, updated=1, unchanged=0)
        runs.finish_run(conn, run_id, status="ok")
        row = runs.get_run(conn, run_id)
        with pytest.raises(LookupError):
            runs.add_to_run(conn, run_id + 1000, fetched=1)
    assert row is not None and row["status"] == "ok"
    assert (row["fetched"], row["inserted"], row["updated"], row["announcements"]) == (5, 4, 1, 4)


def test_stale_running_rows_are_abandoned(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        old = runs.start_run(conn, kind="oai-backfill", source="oai", job_id="a", now=T0)
        rerun = runs.start_run(
            conn, kind="oai-backfill", source="oai", job_id="b", now=T0 + timedelta(hours=1)
        )
        live = runs.start_run(
            conn, kind="rss", source="rss", job_id="c", now=T0 + timedelta(hours=1)
        )
        done = runs.start_run(conn, kind="rss", source="rss", job_id="d", now=T0)
        runs.finish_run(conn, done, status="ok", fetched=2)
        marked = runs.abandon_stale_runs(
            conn, started_before=T0 + timedelta(minutes=30), job_id="b"
        )
    assert marked == 2
    with engine.connect() as conn:
        rows = {pk: runs.get_run(conn, pk) for pk in (old, rerun, live, done)}
    for pk in (old, rerun):
        row = rows[pk]
        assert row is not None
        assert (row["status"], row["error"]) == ("failed", runs.ABANDONED)
        assert row["finished_at"] is not None
    assert rows[live] is not None and rows[live]["status"] == "running"
    assert rows[done] is not None and (rows[done]["status"], rows[done]["fetched"]) == ("ok", 2)


def test_recent_runs_newest_first_and_limited(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        ids = [
            runs.start_run(conn, kind="rss", source=f"s{i}", now=T0 + timedelta(minutes=i))
            for i in range(5)
        ]
        same = runs.start_run(conn, kind="rss", source="tie", now=T0 + timedelta(minutes=4))
    with engine.connect() as conn:
        recent = runs.recent_runs(conn, limit=3)
        everything = runs.recent_runs(conn)
    assert [r["pk"] for r in recent] == [same, ids[4], ids[3]]
    assert len(everything) == 6


def test_run_rolls_back_with_the_callers_transaction(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), engine.begin() as conn:
        runs.start_run(conn, kind="rss", source="x")
        raise RuntimeError("the job failed before committing")
    with engine.connect() as conn:
        assert runs.recent_runs(conn) == []


def test_harvest_state_roundtrip_and_upsert(engine) -> None:  # type: ignore[no-untyped-def]
    key = runs.harvest_key("cs", date(2025, 8, 1), date(2025, 8, 31))
    assert key == "oai:cs:2025-08-01:2025-08-31"
    assert runs.harvest_key("cs", date(2025, 8, 1), None) == "oai:cs:2025-08-01:"
    with engine.begin() as conn:
        assert runs.get_harvest(conn, key) is None
        first = HarvestState(
            key=key,
            set_spec="cs",
            date_from=date(2025, 8, 1),
            date_until=date(2025, 8, 31),
            resumption_token="6960524|1001",
            cursor=0,
            complete_list_size=1162,
            harvested=1000,
        )
        saved = runs.save_harvest(conn, first, now=T0)
        assert saved.updated_at == T0
        assert first.updated_at is None  # the caller's object is left alone
    with engine.connect() as conn:
        assert runs.get_harvest(conn, key) == saved

    later = T0 + timedelta(minutes=3)
    with engine.begin() as conn:
        done = HarvestState(
            key=key,
            set_spec="cs",
            date_from=date(2025, 8, 1),
            date_until=date(2025, 8, 31),
            resumption_token=None,
            cursor=1000,
            complete_list_size=1162,
            harvested=1162,
            done=True,
        )
        runs.save_harvest(conn, done, now=later)
    with engine.connect() as conn:
        got = runs.get_harvest(conn, key)
    assert got is not None
    assert got.done is True
    assert (got.resumption_token, got.cursor, got.harvested) == (None, 1000, 1162)
    assert got.updated_at == later


def test_stored_count_and_day_checks(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                paper("2607.00001", [Ann("cs.CL", DAY, AnnounceKind.NEW, 1)]),
                paper(
                    "2607.00002",
                    [
                        Ann("cs.CL", DAY, AnnounceKind.NEW, 2),
                        Ann("cs.LG", DAY, AnnounceKind.CROSS, 1),
                    ],
                ),
                paper("2607.00003", [Ann("cs.CL", DAY - timedelta(days=1), AnnounceKind.NEW, 1)]),
            ],
        )
    with engine.begin() as conn:
        assert runs.stored_count(conn, "cs.CL", DAY) == 2
        assert runs.stored_count(conn, "cs.LG", DAY) == 1
        assert runs.stored_count(conn, "cs.CV", DAY) == 0
        n = runs.stored_count(conn, "cs.CL", DAY)
        assert not runs.record_day_check(
            conn, category="cs.CL", day=DAY, feed_count=3, stored_count=n, now=T0
        )
        assert runs.record_day_check(
            conn, category="cs.LG", day=DAY, feed_count=1, stored_count=1, now=T0
        )
        assert runs.record_day_check(
            conn, category="cs.CL", day=DAY - timedelta(days=1), feed_count=1,
            stored_count=1, now=T0,
        )  # fmt: skip
    with engine.connect() as conn:
        checks = runs.day_checks(conn)
        recent = runs.day_checks(conn, since=DAY)
    assert [(c["category"], c["day"], c["complete"]) for c in checks] == [
        ("cs.CL", DAY, False),
        ("cs.LG", DAY, True),
        ("cs.CL", DAY - timedelta(days=1), True),
    ]
    assert checks[0]["feed_count"] == 3 and checks[0]["stored_count"] == 2
    assert checks[0]["checked_at"] == T0
    assert len(recent) == 2

    # A re-check after the missing paper arrived overwrites the row.
    later = T0 + timedelta(hours=1)
    with engine.begin() as conn:
        assert runs.record_day_check(
            conn, category="cs.CL", day=DAY, feed_count=3, stored_count=3, now=later
        )
    with engine.connect() as conn:
        (check,) = runs.day_checks(conn, since=DAY, category="cs.CL")
    assert (check["stored_count"], check["complete"], check["checked_at"]) == (3, True, later)
