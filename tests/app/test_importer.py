"""File imports on both databases: dirty text is cleaned, never a reason to lose a batch."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, select

from app.db.models import Paper, VenuePaper
from app.importer import import_file


def listing_line(arxiv_id: str, title: str, abstract: str = "An abstract.") -> dict[str, object]:
    return {
        "id": arxiv_id,
        "listing_date": "2025-08-05",
        "title": title,
        "authors": ["Ann Lee"],
        "categories": ["cs.CL"],
        "abstract": abstract,
    }


def test_import_with_nul_and_control_characters_keeps_every_valid_record(
    engine: Engine, tmp_path: Path
) -> None:
    rows = [
        listing_line("2508.00001", "Clean neighbour before"),
        listing_line("2508.00002", "Title with a NUL\x00 inside"),
        listing_line("2508.00003", "Control\x02 characters", "Abstract\x01 with \x1f them\x00."),
        {"id": "2508.00004", "title": "No abstract, so not a record"},
        listing_line("2508.00005", "Clean neighbour after"),
    ]
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    # Small pages, so the dirty records share a transaction with clean ones.
    report = import_file(engine, path, batch_size=2)

    assert report.failed is None
    assert report.papers == report.inserted == 4
    assert [(e.line, e.record) for e in report.errors] == [(4, "2508.00004")]
    with engine.connect() as conn:
        stored = dict(conn.execute(select(Paper.arxiv_id, Paper.title)).all())
        abstract = conn.scalar(select(Paper.abstract).where(Paper.arxiv_id == "2508.00003"))
    assert stored == {
        "2508.00001": "Clean neighbour before",
        "2508.00002": "Title with a NUL inside",
        "2508.00003": "Control characters",
        "2508.00005": "Clean neighbour after",
    }
    assert abstract == "Abstract with them."


def test_venue_import_with_nul_and_control_characters(engine: Engine, tmp_path: Path) -> None:
    rows = [
        {"id": "p1", "title": "Clean", "author": "A; B"},
        {
            "id": "p2",
            "title": "N\x00UL",
            "author": "C\x00; D",
            "abstract": "x\x02y",
            "tldr": "\x00",
        },
        {"id": "p3", "title": "Also clean"},
    ]
    path = tmp_path / "demo2024.json"
    path.write_text(json.dumps(rows))

    report = import_file(engine, path, venue="demo2024")

    assert report.failed is None and report.venue_papers == 3 and report.errors == []
    with engine.connect() as conn:
        got = conn.execute(
            select(
                VenuePaper.venue_paper_id,
                VenuePaper.title,
                VenuePaper.authors,
                VenuePaper.abstract,
                VenuePaper.tldr,
            ).order_by(VenuePaper.venue_paper_id)
        ).all()
    assert [tuple(r) for r in got] == [
        ("p1", "Clean", ["A", "B"], None, None),
        ("p2", "NUL", ["C", "D"], "xy", None),
        ("p3", "Also clean", [], None, None),
    ]


def kaggle_line(arxiv_id: str, version: str = "v1") -> str:
    row = {
        "id": arxiv_id,
        "authors": "Ann Lee",
        "title": f"Paper {arxiv_id}",
        "categories": "cs.LG",
        "abstract": "An abstract.",
        "versions": [{"version": version, "created": "Mon, 2 Apr 2007 19:18:42 GMT"}],
    }
    return json.dumps(row) + "\n"


def test_a_value_the_database_refuses_costs_only_its_record(engine: Engine, tmp_path: Path) -> None:
    # PostgreSQL refuses a version beyond its integer range (SQLite stores it): the page is
    # written again record by record, so the neighbours in the same page are kept.
    path = tmp_path / "kaggle.jsonl"
    path.write_text(
        kaggle_line("0704.0001")
        + kaggle_line("0704.0002", "v99999999999")
        + kaggle_line("0704.0003")
    )
    report = import_file(engine, path, batch_size=10)
    assert report.failed is None
    with engine.connect() as conn:
        stored = set(conn.scalars(select(Paper.arxiv_id)))
    assert {"0704.0001", "0704.0003"} <= stored
    if engine.dialect.name == "postgresql":
        assert stored == {"0704.0001", "0704.0003"} and report.inserted == 2
        assert [(e.line, e.record) for e in report.errors] == [(2, "0704.0002")]
        assert "refused" in report.errors[0].message
    else:
        assert len(stored) == 3 and report.errors == []

    # The same for a venue list: a status longer than its column.
    venue_path = tmp_path / "demo2025.json"
    rows = [{"id": "v1", "title": "One"}, {"id": "v2", "title": "Two", "status": "x" * 100}]
    venue_path.write_text(json.dumps([*rows, {"id": "v3", "title": "Three"}]))
    report = import_file(engine, venue_path, venue="demo2025")
    assert report.failed is None
    with engine.connect() as conn:
        ids = set(conn.scalars(select(VenuePaper.venue_paper_id)))
    assert {"v1", "v3"} <= ids
    if engine.dialect.name == "postgresql":
        assert ids == {"v1", "v3"} and report.venue_papers == 2
        assert [e.record for e in report.errors] == ["v2"]
