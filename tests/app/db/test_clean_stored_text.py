"""The migration that removes what XML forbids from rows stored before imports cleaned it
(migrations/versions/0008_clean_stored_text.py), on both databases, search index included."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.db import store
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.db.models import Paper, VenuePaper
from app.ingest.records import PaperRecord, VenuePaperRecord
from app.ingest.text import title_key
from app.search import search_papers

PAPERS = Paper.__table__
VENUE_PAPERS = VenuePaper.__table__


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def paper(arxiv_id: str, title: str) -> PaperRecord:
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        abstract="An abstract.",
        authors=["Ann Lee"],
        primary_category="cs.LG",
        categories=["cs.LG"],
    )


def test_upgrade_cleans_stored_rows_and_their_search_index(url: str) -> None:
    upgrade(url, "0007")
    engine = make_engine(url)
    nul = "\x00" if engine.dialect.name == "sqlite" else ""  # PostgreSQL never stored one
    try:
        with engine.begin() as conn:
            store.upsert_papers(conn, [paper("2501.00001", "x"), paper("2501.00002", "Clean")])
            store.upsert_venue(
                conn,
                "demo",
                [
                    VenuePaperRecord("demo", "p1", "Clean venue paper", ["A"]),
                    VenuePaperRecord("demo", "p2", "x", ["B"]),
                    VenuePaperRecord("demo", "p3", "x", ["C"]),
                ],
            )
            # What older imports let through, written the way they wrote it.
            conn.execute(
                update(Paper)
                .where(Paper.arxiv_id == "2501.00001")
                .values(
                    title="Quantum\x02Boltzmann  machines \x1f",
                    abstract=f"Replica\x06 stacking{nul} of \ufffemeasurements.",
                    authors=["Anna\x06 Levit", "\x01", "Łukasz Kaiser"],
                    classes=["I.2\x03"],
                    comments=f"{nul}\x02",
                )
            )
            conn.execute(
                update(VenuePaper)
                .where(VenuePaper.venue_paper_id == "p2")
                .values(
                    title="Towards\x02 Synthesizing Programs",
                    authors=["Anna Levit;\x06 Daniel Crawford"],
                    abstract="In recent years\x02.",
                    keywords=["x\x01", "\x1f"],
                    tldr="\x02",
                )
            )
            # A dirty id whose clean form is already stored: the clean row stays.
            conn.execute(
                update(VenuePaper)
                .where(VenuePaper.venue_paper_id == "p3")
                .values(venue_paper_id="p\x021", title="Dirty duplicate")
            )
        with engine.connect() as conn:
            # The database's own index, as 0007 built it: today's full-text index reads
            # tables that later migrations add, so it cannot run on this schema.
            hits = search_papers(conn, "QuantumBoltzmann", sort="date", engine="database").hits
            assert not hits  # the control character splits the word in the index

        upgrade(url)

        with engine.connect() as conn:
            row = conn.execute(select(PAPERS).where(PAPERS.c.arxiv_id == "2501.00001")).one()
            assert row.title == "QuantumBoltzmann machines"
            assert row.title_key == title_key("QuantumBoltzmann machines")
            assert row.abstract == "Replica stacking of measurements."
            assert row.authors == ["Anna Levit", "Łukasz Kaiser"]
            assert row.classes == ["I.2"] and row.comments is None
            clean = conn.execute(select(PAPERS).where(PAPERS.c.arxiv_id == "2501.00002")).one()
            assert (clean.title, clean.authors) == ("Clean", ["Ann Lee"])
            hits = search_papers(conn, "QuantumBoltzmann", sort="date").hits
            assert [h.arxiv_id for h in hits] == ["2501.00001"]
            assert [h.arxiv_id for h in search_papers(conn, "Łukasz", sort="date").hits] == [
                "2501.00001"
            ]
            venue = {
                r.venue_paper_id: r
                for r in conn.execute(select(VENUE_PAPERS).where(VENUE_PAPERS.c.venue == "demo"))
            }
            assert set(venue) == {"p1", "p2"}
            assert venue["p1"].title == "Clean venue paper"
            p2 = venue["p2"]
            assert p2.title == "Towards Synthesizing Programs"
            assert p2.title_key == title_key("Towards Synthesizing Programs")
            assert p2.authors == ["Anna Levit; Daniel Crawford"]
            assert (p2.abstract, p2.keywords, p2.tldr) == ("In recent years.", ["x"], None)
    finally:
        engine.dispose()
