"""The text of replaced versions: kept by the store when a newer version replaces a paper,
on SQLite and PostgreSQL alike; nothing else writes a revision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from app.db import store
from app.db.models import Paper, PaperRevision
from app.ingest.records import PaperRecord

revisions = PaperRevision.__table__


def rec(version: int | None, **fields: Any) -> PaperRecord:
    values: dict[str, Any] = {
        "arxiv_id": "2603.00001",
        "title": "Diffusion models for quokkas",
        "abstract": "We study quokkas.",
        "authors": ["Ada Lovelace"],
        "primary_category": "cs.LG",
        "categories": ["cs.LG"],
        "version": version,
        "first_submitted_at": datetime(2026, 3, 1, tzinfo=UTC),
    }
    values.update(fields)
    return PaperRecord(**values)


def write(engine: Engine, *records: PaperRecord) -> store.UpsertCounts:
    with engine.begin() as conn:
        return store.upsert_papers(conn, records)


def stored(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                revisions.c.version,
                revisions.c.title,
                revisions.c.abstract,
                revisions.c.authors,
                revisions.c.comments,
                revisions.c.journal_ref,
            ).order_by(revisions.c.version)
        )
        return [dict(r._mapping) for r in rows]


def test_a_new_paper_keeps_no_revision(engine: Engine) -> None:
    write(engine, rec(1))
    assert stored(engine) == []


def test_a_newer_version_keeps_the_text_it_replaces(engine: Engine) -> None:
    write(engine, rec(1, comments="12 pages", journal_ref=None))
    counts = write(
        engine,
        rec(3, title="Flow matching for quokkas", comments="Accepted at ICLR 2026", authors=[]),
    )
    assert counts.updated == 1
    assert stored(engine) == [
        {
            "version": 1,
            "title": "Diffusion models for quokkas",
            "abstract": "We study quokkas.",
            "authors": ["Ada Lovelace"],
            "comments": "12 pages",
            "journal_ref": None,
        }
    ]
    with engine.connect() as conn:
        title = conn.scalar(select(Paper.__table__.c.title))
        seen, replaced = conn.execute(select(revisions.c.seen_at, revisions.c.replaced_at)).one()
    assert title == "Flow matching for quokkas"  # the paper row holds the current text
    assert seen <= replaced


def test_each_replacement_keeps_its_own_version(engine: Engine) -> None:
    write(engine, rec(1))
    write(engine, rec(2, abstract="We study quokkas twice."))
    write(engine, rec(3, abstract="We study quokkas thrice."))
    assert [(r["version"], r["abstract"]) for r in stored(engine)] == [
        (1, "We study quokkas."),
        (2, "We study quokkas twice."),
    ]


def test_the_same_version_again_or_an_older_one_keeps_nothing(engine: Engine) -> None:
    write(engine, rec(2))
    write(engine, rec(2, abstract="A corrected abstract of the same version."))
    write(engine, rec(1, title="An outdated title"))
    write(engine, rec(2, abstract="A corrected abstract of the same version."))
    assert stored(engine) == []


def test_a_version_no_source_named_is_kept_as_version_0(engine: Engine) -> None:
    write(engine, rec(None, title="As the listing had it"))
    write(engine, rec(2))
    assert [(r["version"], r["title"]) for r in stored(engine)] == [(0, "As the listing had it")]


def test_a_replacement_in_the_same_batch_as_its_paper_keeps_only_the_newest(
    engine: Engine,
) -> None:
    # Within one batch the newest version wins before anything is written: no text of the
    # older one was ever stored, so none is kept.
    write(engine, rec(1), rec(2, title="Second"))
    assert stored(engine) == []
