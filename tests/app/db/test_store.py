"""The store's write rules, on SQLite and PostgreSQL: idempotent upserts, version order,
no partial batches, venue linking, click counters."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text

from app.db import store
from app.db.models import Announcement, Paper, PaperCategory, PaperClicks, PaperVersion, VenuePaper
from app.db.queries import get_paper, stats
from app.ingest.records import (
    AnnounceKind,
    PaperRecord,
    VenuePaperRecord,
    Version,
)
from app.ingest.records import Announcement as Ann

DAY = date(2026, 7, 1)


def record(arxiv_id: str = "2607.00001", version: int | None = 1, **kw) -> PaperRecord:
    fields = {
        "title": f"A study of {arxiv_id}",
        "abstract": "We study things.",
        "authors": ["Ada Lovelace", "Alan Turing"],
        "primary_category": "cs.CL",
        "categories": ["cs.CL", "cs.LG"],
        "version": version,
        "first_submitted_at": datetime(2026, 6, 29, 12, tzinfo=UTC),
        "announcements": [
            Ann("cs.CL", DAY, AnnounceKind.NEW, 1),
            Ann("cs.LG", DAY, AnnounceKind.CROSS, 7),
        ],
    }
    fields.update(kw)
    return PaperRecord(arxiv_id=arxiv_id, **fields)


def snapshot(conn) -> dict:  # type: ignore[no-untyped-def]
    """Everything a reader could see, for comparing before/after."""
    out = {}
    for model in (Paper, PaperVersion, PaperCategory, Announcement):
        table = model.__table__
        out[table.name] = sorted(
            tuple(str(v) for v in row) for row in conn.execute(select(table)).all()
        )
    return out


def test_import_twice_changes_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    batch = [record("2607.00001"), record("2607.00002", version=None)]
    with engine.begin() as conn:
        first = store.upsert_papers(conn, batch)
    with engine.connect() as conn:
        before = snapshot(conn)
    with engine.begin() as conn:
        again = store.upsert_papers(
            conn, [record("2607.00001"), record("2607.00002", version=None)]
        )
    with engine.connect() as conn:
        after = snapshot(conn)
    assert (first.inserted, first.updated, first.announcements) == (2, 0, 4)
    assert (again.inserted, again.updated, again.unchanged, again.announcements) == (0, 0, 2, 0)
    assert before == after  # changed_at included: nothing was rewritten


def test_newer_version_updates_and_extends_history(engine) -> None:  # type: ignore[no-untyped-def]
    v1_time = datetime(2026, 6, 29, 12, tzinfo=UTC)
    v2_time = datetime(2026, 7, 20, 9, tzinfo=UTC)
    with engine.begin() as conn:
        store.upsert_papers(conn, [record(versions=[Version(1, v1_time)], doi="10.1/x")])
        counts = store.upsert_papers(
            conn,
            [
                record(
                    version=2,
                    title="A better study",
                    categories=["cs.CL", "cs.AI"],
                    versions=[Version(1, v1_time), Version(2, v2_time)],
                    last_updated_at=v2_time,
                    announcements=[Ann("cs.CL", date(2026, 7, 21), AnnounceKind.REPLACE, 3)],
                )
            ],
        )
    assert counts.updated == 1
    with engine.connect() as conn:
        paper = get_paper(conn, "2607.00001")
        cats = set(conn.scalars(select(PaperCategory.category)))
    assert paper is not None
    assert paper["title"] == "A better study"
    assert paper["version"] == 2
    assert paper["doi"] == "10.1/x"  # a source without a DOI never erases it
    assert [v["version"] for v in paper["versions"]] == [1, 2]
    assert paper["announced_on"] == DAY  # first announcement day is kept
    assert {a["kind"] for a in paper["announcements"]} == {"new", "cross", "replace"}
    assert cats == {"cs.CL", "cs.AI"}  # categories follow the newest metadata


def test_older_version_never_overwrites_newer(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        store.upsert_papers(conn, [record(version=3, title="Version three")])
        counts = store.upsert_papers(conn, [record(version=2, title="Version two")])
        store.upsert_papers(conn, [record(version=None, title="Listing without version")])
    assert counts.unchanged == 1
    with engine.connect() as conn:
        assert conn.scalar(select(Paper.title)) == "Version three"


def test_duplicates_inside_one_batch_keep_the_newest(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        store.upsert_papers(conn, [record(version=2, title="two"), record(version=1, title="one")])
    with engine.connect() as conn:
        assert conn.scalar(select(Paper.title)) == "two"
        assert conn.scalar(select(func.count()).select_from(Paper)) == 1


def test_failed_batch_leaves_no_partial_rows(engine) -> None:  # type: ignore[no-untyped-def]
    bad = record("2607.00003")
    bad.title = None  # type: ignore[assignment]  # violates NOT NULL in the database
    with pytest.raises(Exception), engine.begin() as conn:  # noqa: B017 - any DB error
        store.upsert_papers(conn, [record("2607.00001"), record("2607.00002"), bad])
    with engine.connect() as conn:
        for model in (Paper, PaperVersion, PaperCategory, Announcement):
            assert conn.scalar(select(func.count()).select_from(model)) == 0


def test_venue_papers_link_by_normalised_title(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                record("2607.00001", title="Attention Is All You Need"),
                record("2607.00002", title="Same Title"),
                record("2607.00003", title="Same  title"),  # two papers share it: no link
            ],
        )
        venue = [
            VenuePaperRecord("nips2017", "p1", "attention is all you need", ["A. V."]),
            VenuePaperRecord("nips2017", "p2", "Same Title", ["B"]),
            VenuePaperRecord("nips2017", "p3", "Something else", ["C"]),
        ]
        store.upsert_venue(conn, "nips2017", venue)
        store.upsert_venue(conn, "nips2017", venue)  # idempotent
        linked = store.link_venues(conn)
    with engine.connect() as conn:
        links = dict(conn.execute(select(VenuePaper.venue_paper_id, VenuePaper.arxiv_id)).all())
        s = stats(conn)
    assert links == {"p1": "2607.00001", "p2": None, "p3": None}
    assert linked == 1
    assert s.venues == {"nips2017": {"papers": 3, "linked_to_arxiv": 1}}


def test_click_counters(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        for _ in range(3):
            store.record_click(conn, "2607.00001", "pdf")
        store.record_click(conn, "2607.00001", "summary")
    with engine.connect() as conn:
        row = conn.execute(select(PaperClicks.pdf, PaperClicks.summary)).one()
    assert tuple(row) == (3, 1)
    with pytest.raises(ValueError), engine.begin() as conn:
        store.record_click(conn, "2607.00001", "likes")


def test_stats_counts_papers_days_and_categories(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        store.upsert_papers(conn, [record("2607.00001"), record("2607.00002")])
    with engine.connect() as conn:
        s = stats(conn)
        # The day's list is a query on announcements.
        listed = (
            conn.execute(
                text("SELECT arxiv_id FROM announcements WHERE category='cs.LG' ORDER BY arxiv_id")
            )
            .scalars()
            .all()
        )
    assert s.papers == 2 and s.days == 1 and s.announcements == 4
    assert s.categories == {"cs.CL": 2, "cs.LG": 2}
    assert s.latest_days == {"2026-07-01": {"cs.CL": 2, "cs.LG": 2}}
    assert listed == ["2607.00001", "2607.00002"]


def test_a_title_with_styling_commands_links_and_old_keys_are_migrated(engine) -> None:  # type: ignore[no-untyped-def]
    from app.db.migrate import downgrade, upgrade

    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                record("2607.00001", title=r"\textsc{SimInstruct}: A Responsible Tool"),
                record("2607.00002", title=r"What if I ask in \textit{alia lingua}?"),
            ],
        )
        venue = [
            VenuePaperRecord("acl2026", "p1", "SimInstruct: A Responsible Tool", ["A"]),
            VenuePaperRecord("acl2026", "p2", "What If I Ask in Alia Lingua?", ["B"]),
        ]
        store.upsert_venue(conn, "acl2026", venue)
        assert store.link_venues(conn) == 2
        # As a store written before the keys dropped styling commands had them.
        conn.execute(
            Paper.__table__.update()
            .where(Paper.__table__.c.arxiv_id == "2607.00002")
            .values(title_key="what if i ask in textit alia lingua")
        )
        store.link_venues(conn)
    with engine.connect() as conn:
        before = dict(conn.execute(select(VenuePaper.venue_paper_id, VenuePaper.arxiv_id)).all())
    assert before == {"p1": "2607.00001", "p2": None}
    url = engine.url.render_as_string(hide_password=False)
    downgrade(url, "0015")
    upgrade(url)
    with engine.connect() as conn:
        after = dict(conn.execute(select(VenuePaper.venue_paper_id, VenuePaper.arxiv_id)).all())
        key = conn.scalar(select(Paper.title_key).where(Paper.arxiv_id == "2607.00002"))
    assert after == {"p1": "2607.00001", "p2": "2607.00002"}
    assert key == "what if i ask in alia lingua"
