"""Machine-written TL;DRs: the `summaries` table, which papers need one, and what a card shows.

The ML pool computes TL;DRs; this module decides what to summarise and stores
the results, so nothing here imports torch. A stored TL;DR records the paper version it was
written from and the model version that wrote it. It is *current* when both match (the
paper's `papers.version`, the running `Summarizer.version`); otherwise it is *stale*: still
shown (an older TL;DR beats none; the card notes the version it was written for) and
written again by the pool.

Precedence on a card: an author-written TL;DR of a linked venue paper (OpenReview's) wins
over the machine's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Connection

from app.artifacts.base import ArtifactTable, not_older
from app.db.models import Paper, Summary, VenuePaper
from app.db.statements import chunks

papers = Paper.__table__
summaries_t = Summary.__table__
venue_papers = VenuePaper.__table__
TLDRS = ArtifactTable(summaries_t)


def checkpoint_present(path: Path) -> bool:
    """Whether a summarizer checkpoint (a file, or a directory with something besides
    hidden temporary files) is at `path`."""
    if path.is_file():
        return True
    return path.is_dir() and any(not p.name.startswith(".") for p in path.iterdir())


def missing_checkpoint(path: Path) -> str:
    """What to tell a user whose summarizer checkpoint is missing."""
    return (
        f"no summarizer checkpoint at {path}: run `papershelf ml train-summarizer` first "
        "(or set PAPERSHELF_SUMMARIZER_PATH)"
    )


# --- what needs a TL;DR --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """A paper to summarise, with the version its TL;DR will be recorded against."""

    arxiv_id: str
    version: int | None
    title: str
    abstract: str


def _needs_tldr(model_version: str | None) -> sa.ColumnElement[bool]:
    """On `TLDRS.joined`: no TL;DR, one for another paper version, or (when the model is
    known) one written by another model."""
    stale = [
        summaries_t.c.arxiv_id.is_(None),
        summaries_t.c.paper_version.is_distinct_from(papers.c.version),
    ]
    if model_version is not None:
        stale.append(summaries_t.c.model_version != model_version)
    return sa.or_(*stale)


_PENDING_COLUMNS = (papers.c.arxiv_id, papers.c.version, papers.c.title, papers.c.abstract)


def pending_for_day(
    conn: Connection, day: date, category: str, model_version: str
) -> list[Pending]:
    """The papers of a day's list (new, cross-lists, replacements) lacking a current TL;DR."""
    rows = TLDRS.pending_for_day(conn, day, category, _needs_tldr(model_version), _PENDING_COLUMNS)
    return [Pending(*r) for r in rows]


def pending_for_ids(conn: Connection, ids: Sequence[str], model_version: str) -> list[Pending]:
    """The stored papers among `ids` lacking a current TL;DR, in the order given."""
    rows = TLDRS.pending_for_ids(conn, ids, _needs_tldr(model_version), _PENDING_COLUMNS)
    return [Pending(*r) for r in rows]


def pending_ids(
    conn: Connection, model_version: str | None, *, limit: int | None = None
) -> Iterator[str]:
    """Ids of papers lacking a current TL;DR, newest first (the back-fill's order), streamed.
    With `model_version` None (no pool has said which model it runs), TL;DRs of any model
    count as current."""
    return TLDRS.pending_ids(conn, _needs_tldr(model_version), limit=limit)


@dataclass(frozen=True, slots=True)
class PendingCounts:
    missing: int  # no TL;DR at all
    paper_version: int  # written for another version of the paper
    model_version: int  # written by another model (0 when the model is unknown)

    @property
    def total(self) -> int:
        return self.missing + self.paper_version + self.model_version


def pending_counts(conn: Connection, model_version: str | None) -> PendingCounts:
    """Why papers need a TL;DR, each counted once (missing, then paper, then model)."""
    s = summaries_t.c
    missing = s.arxiv_id.is_(None)
    old_paper = sa.and_(~missing, s.paper_version.is_distinct_from(papers.c.version))
    old_model = (
        sa.and_(
            ~missing,
            s.paper_version.is_not_distinct_from(papers.c.version),
            s.model_version != model_version,
        )
        if model_version is not None
        else sa.false()
    )

    def count(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    row = conn.execute(
        sa.select(count(missing), count(old_paper), count(old_model)).select_from(TLDRS.joined)
    ).one()
    return PendingCounts(*(int(n) for n in row))


# --- writes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Written:
    arxiv_id: str
    paper_version: int | None
    model_version: str
    tldr: str


def upsert(conn: Connection, rows: Iterable[Written], *, now: datetime | None = None) -> int:
    """Store TL;DRs (idempotent). A row is rewritten only when something differs, and never
    with one written from an older paper version than the stored one (a slow job must not
    undo a newer TL;DR). Returns the rows inserted or changed."""
    now = now or datetime.now(UTC)
    values = [
        {
            "arxiv_id": r.arxiv_id,
            "paper_version": r.paper_version,
            "model_version": r.model_version,
            "tldr": r.tldr,
            "created_at": now,
        }
        for r in rows
    ]
    return TLDRS.upsert(
        conn,
        values,
        update=lambda new, old: {
            "paper_version": new.paper_version,
            "model_version": new.model_version,
            "tldr": new.tldr,
            "created_at": new.created_at,
        },
        where=lambda new, old: sa.and_(
            not_older(new, old),
            sa.or_(
                old.paper_version.is_distinct_from(new.paper_version),
                old.model_version != new.model_version,
                old.tldr != new.tldr,
            ),
        ),
    )


# --- reads for the pages and the API -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShownTldr:
    """The TL;DR a card shows."""

    text: str
    # The model that wrote it; None for an author-written one (a linked venue paper's).
    model: str | None = None
    # The paper version a machine TL;DR was written from.
    paper_version: int | None = None

    def stale(self, paper_version: int | None) -> bool:
        """Written for another version of the paper (the model's age is the pool's concern:
        the site does not know which model the pool runs)."""
        return self.model is not None and self.paper_version != paper_version


def shown_tldrs(conn: Connection, ids: Sequence[str]) -> dict[str, ShownTldr]:
    """The TL;DR to show per paper among `ids` (those without one are absent): a linked
    venue paper's when it has one, else the ML pool's. Two IN queries per 500 ids."""
    out: dict[str, ShownTldr] = {}
    for chunk in chunks(list(dict.fromkeys(ids))):
        rows = conn.execute(
            sa.select(
                summaries_t.c.arxiv_id,
                summaries_t.c.tldr,
                summaries_t.c.model_version,
                summaries_t.c.paper_version,
            ).where(summaries_t.c.arxiv_id.in_(chunk))
        )
        for arxiv_id, text, model, version in rows:
            if text.strip():
                out[arxiv_id] = ShownTldr(text, model, version)
        venue = conn.execute(
            sa.select(venue_papers.c.arxiv_id, venue_papers.c.tldr)
            .where(venue_papers.c.arxiv_id.in_(chunk), venue_papers.c.tldr.is_not(None))
            .order_by(venue_papers.c.venue.desc())  # the first venue by name wins
        )
        for arxiv_id, text in venue:
            if text.strip():
                out[arxiv_id] = ShownTldr(text)
    return out
