"""The admin status summary (app.fetch_status) on SQLite and PostgreSQL: the store's fetch
bookkeeping joined with arXiv's calendar."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from app import fetch_status
from app.db import runs, store
from app.ingest.records import AnnounceKind
from app.ingest.records import Announcement as Ann
from app.schedule import ET
from tests.app.db.test_runs import DAY, T0, paper


def test_status_summary(engine) -> None:  # type: ignore[no-untyped-def]
    holidays = frozenset({date(2026, 7, 20)})
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                paper("2607.00001", [Ann("cs.CL", DAY, AnnounceKind.NEW, 1)]),
                paper("2607.00002", [Ann("cs.CL", DAY, AnnounceKind.NEW, 2)]),
                paper("2607.00003", [Ann("cs.CV", DAY - timedelta(days=1), AnnounceKind.NEW, 1)]),
            ],
        )
        runs.record_day_check(conn, category="cs.CL", day=DAY, feed_count=2, stored_count=2, now=T0)
        ok = runs.start_run(conn, kind="rss", source="cs.CL", category="cs.CL", now=T0)
        runs.finish_run(conn, ok, status="ok", fetched=2, inserted=2, now=T0)
        bad = runs.start_run(
            conn, kind="rss", source="cs.CV", category="cs.CV", now=T0 + timedelta(minutes=1)
        )
        runs.finish_run(conn, bad, status="failed", error="HTTP 503")
        pending = runs.start_run(conn, kind="ids", source="api", now=T0 + timedelta(minutes=2))

    with engine.connect() as conn:
        summary = fetch_status.status_summary(
            conn, categories=["cs.CL", "cs.CV", "cs.AI"], now=T0, holidays=holidays
        )
    assert summary["papers"] == 3
    assert summary["latest_listing_day"] == DAY
    assert summary["next_announcement"] == {
        "at": datetime(2026, 7, 7, 20, tzinfo=ET),
        "listing_day": date(2026, 7, 8),
    }
    assert summary["upcoming_holidays"] == [date(2026, 7, 20)]

    cl, cv, ai = (summary["categories"][c] for c in ("cs.CL", "cs.CV", "cs.AI"))
    assert (cl["latest_day"], cl["latest_day_count"], cl["up_to_date"]) == (DAY, 2, True)
    assert cl["check"]["complete"] is True
    assert cl["last_ok"]["pk"] == ok and cl["last_failed"] is None

    assert (cv["latest_day"], cv["latest_day_count"], cv["up_to_date"]) == (
        DAY - timedelta(days=1),
        1,
        False,
    )
    assert cv["check"] is None
    assert cv["last_ok"] is None
    assert cv["last_failed"]["error"] == "HTTP 503"

    assert ai == {
        "latest_day": None,
        "latest_day_count": 0,
        "up_to_date": False,
        "check": None,
        "last_ok": None,
        "last_failed": None,
    }
    assert summary["last_ok"]["pk"] == ok
    assert summary["last_failed"]["pk"] == bad
    assert [r["pk"] for r in summary["running"]] == [pending]


def test_status_summary_is_orjson_serialisable(engine) -> None:  # type: ignore[no-untyped-def]
    import orjson

    with engine.begin() as conn:
        run_id = runs.start_run(conn, kind="rss", source="cs.CL", category="cs.CL")
        runs.finish_run(conn, run_id, status="ok")
        summary = fetch_status.status_summary(
            conn, categories=["cs.CL"], now=T0, holidays=frozenset()
        )
    assert orjson.loads(orjson.dumps(summary))["categories"]["cs.CL"]["last_ok"]["status"] == "ok"
