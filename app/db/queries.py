"""Read-side queries of the papers and venues tables, shared by the CLI, the API and the
pages (what a page shows beside a paper, such as its TL;DR, is joined above the store, in
`app.listing`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, Row, func, select

from app.db.models import Announcement, Paper, PaperCategory, PaperVersion, Venue, VenuePaper

papers = Paper.__table__
announcements = Announcement.__table__


@dataclass(slots=True)
class Stats:
    papers: int
    versions: int
    announcements: int
    days: int
    first_day: date | None
    last_day: date | None
    categories: dict[str, int] = field(default_factory=dict)  # papers per category
    latest_days: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> cat -> n
    venues: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["first_day"] = self.first_day.isoformat() if self.first_day else None
        data["last_day"] = self.last_day.isoformat() if self.last_day else None
        return data


def stats(conn: Connection, *, recent_days: int = 7) -> Stats:
    n_papers = conn.scalar(select(func.count()).select_from(papers)) or 0
    n_versions = conn.scalar(select(func.count()).select_from(PaperVersion.__table__)) or 0
    n_ann, n_days, first, last = conn.execute(
        select(
            func.count(),
            func.count(func.distinct(announcements.c.day)),
            func.min(announcements.c.day),
            func.max(announcements.c.day),
        )
    ).one()
    cats = dict(
        conn.execute(
            select(PaperCategory.category, func.count())
            .group_by(PaperCategory.category)
            .order_by(func.count().desc())
        ).all()
    )
    days = [
        d
        for (d,) in conn.execute(
            select(announcements.c.day)
            .distinct()
            .order_by(announcements.c.day.desc())
            .limit(recent_days)
        )
    ]
    latest: dict[str, dict[str, int]] = {}
    if days:
        rows = conn.execute(
            select(announcements.c.day, announcements.c.category, func.count())
            .where(announcements.c.day.in_(days))
            .group_by(announcements.c.day, announcements.c.category)
            .order_by(announcements.c.day.desc(), func.count().desc())
        )
        for day, cat, n in rows:
            latest.setdefault(day.isoformat(), {})[cat] = n
    venues = {
        v.name: {"papers": v.paper_count, "linked_to_arxiv": v.linked_count}
        for v in conn.execute(select(Venue.__table__).order_by(Venue.name))
    }
    return Stats(
        papers=n_papers,
        versions=n_versions,
        announcements=n_ann,
        days=n_days,
        first_day=first,
        last_day=last,
        categories=cats,
        latest_days=latest,
        venues=venues,
    )


def get_paper(conn: Connection, arxiv_id: str) -> dict[str, Any] | None:
    """The paper's row with its version history and announcements, or None."""
    row = conn.execute(select(papers).where(papers.c.arxiv_id == arxiv_id)).mappings().first()
    if row is None:
        return None
    paper = dict(row)
    versions = conn.execute(
        select(PaperVersion.version, PaperVersion.submitted_at)
        .where(PaperVersion.arxiv_id == arxiv_id)
        .order_by(PaperVersion.version)
    ).all()
    paper["versions"] = [
        {"version": v, "submitted_at": t.isoformat() if t else None} for v, t in versions
    ]
    paper["announcements"] = [
        {"category": c, "day": d.isoformat(), "kind": k}
        for c, d, k in conn.execute(
            select(announcements.c.category, announcements.c.day, announcements.c.kind)
            .where(announcements.c.arxiv_id == arxiv_id)
            .order_by(announcements.c.day, announcements.c.category)
        )
    ]
    return paper


def venues(conn: Connection) -> list[Row[*tuple[Any, ...]]]:
    """Every imported venue's row, by name."""
    return list(conn.execute(select(Venue.__table__).order_by(Venue.name)).all())


def venue(conn: Connection, name: str) -> Row[*tuple[Any, ...]] | None:
    """One venue's row, or None."""
    return conn.execute(select(Venue.__table__).where(Venue.name == name)).first()


def venue_papers(
    conn: Connection, name: str, *, limit: int, offset: int = 0
) -> list[Row[*tuple[Any, ...]]]:
    """A venue's papers by status, then title (the order its page and feed show)."""
    vp = VenuePaper.__table__
    return list(
        conn.execute(
            select(vp)
            .where(vp.c.venue == name)
            .order_by(vp.c.status, vp.c.title, vp.c.pk)
            .limit(limit)
            .offset(offset)
        ).all()
    )


def paper_or_newest(conn: Connection, arxiv_id: str | None) -> Row[*tuple[Any, ...]] | None:
    """(arxiv_id, title, abstract) of the paper asked for, else of the newest one."""
    stmt = select(papers.c.arxiv_id, papers.c.title, papers.c.abstract)
    if arxiv_id is not None:
        stmt = stmt.where(papers.c.arxiv_id == arxiv_id)
    else:
        stmt = stmt.order_by(papers.c.sort_date.desc(), papers.c.arxiv_id.desc()).limit(1)
    return conn.execute(stmt).first()
