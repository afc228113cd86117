"""What every derived artifact's table shares: which papers need one, the idempotent upsert,
and chunked reads.

An artifact module (TL;DRs, thumbnails, FAQs, related keywords) describes its table with an
`ArtifactTable` and says, as one SQL condition on `joined`, when a paper's row is stale (or
missing); the selection, the chunking under the bind-parameter limit and the dialect's
`INSERT ... ON CONFLICT DO UPDATE` live here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.elements import KeyedColumnElement

from app.db.models import Announcement, Paper
from app.db.statements import chunks, insert

T = TypeVar("T")

if TYPE_CHECKING:
    AnyRow = sa.Row[*tuple[Any, ...]]

papers = Paper.__table__
announcements = Announcement.__table__

Columns = ReadOnlyColumnCollection[str, KeyedColumnElement[Any]]
# Given the proposed row (`excluded`) and the stored one (the table's columns): the SET
# clause, or the WHERE under which a conflicting row is rewritten.
UpdateSet = Callable[[Columns, Columns], Mapping[str, Any]]
UpdateWhere = Callable[[Columns, Columns], sa.ColumnElement[bool]]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last one shorter) from any iterable, streamed."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def not_older(new: Columns, old: Columns) -> sa.ColumnElement[bool]:
    """An upsert's guard: the proposed row was made from the stored row's paper version or a
    newer one (a slow job must not undo an artifact of a newer version); None is any."""
    return sa.or_(
        old.paper_version.is_(None),
        new.paper_version.is_(None),
        new.paper_version >= old.paper_version,
    )


@dataclass(frozen=True, slots=True)
class ArtifactTable:
    """A table of things derived from papers, whose `key` starts with `arxiv_id`."""

    table: sa.Table
    key: tuple[str, ...] = ("arxiv_id",)

    @property
    def joined(self) -> sa.FromClause:
        """Every paper, with its row when it has one (one row per paper: `key` is arxiv_id)."""
        return papers.outerjoin(self.table, self.table.c.arxiv_id == papers.c.arxiv_id)

    # --- which papers need one -----------------------------------------------------------

    def pending_for_ids(
        self,
        conn: Connection,
        ids: Sequence[str],
        stale: sa.ColumnElement[bool],
        columns: Sequence[sa.ColumnElement[Any]],
    ) -> list[AnyRow]:
        """`columns` of the stored papers among `ids` for which `stale` holds, in the order
        given (each id once). `columns` must start with papers.c.arxiv_id."""
        found: dict[str, AnyRow] = {}
        wanted = list(dict.fromkeys(ids))
        for chunk in chunks(wanted):
            rows = conn.execute(
                sa.select(*columns)
                .select_from(self.joined)
                .where(papers.c.arxiv_id.in_(chunk), stale)
            )
            found.update((r[0], r) for r in rows)
        return [found[i] for i in wanted if i in found]

    def pending_for_day(
        self,
        conn: Connection,
        day: date,
        category: str,
        stale: sa.ColumnElement[bool],
        columns: Sequence[sa.ColumnElement[Any]],
    ) -> list[AnyRow]:
        """`columns` of the papers of a day's list (every kind) for which `stale` holds."""
        listed = sa.select(announcements.c.arxiv_id).where(
            announcements.c.category == category, announcements.c.day == day
        )
        return list(
            conn.execute(
                sa.select(*columns)
                .select_from(self.joined)
                .where(papers.c.arxiv_id.in_(listed), stale)
                .order_by(papers.c.arxiv_id)
            )
        )

    def pending_ids(
        self, conn: Connection, stale: sa.ColumnElement[bool], *, limit: int | None = None
    ) -> Iterator[str]:
        """Ids of papers for which `stale` holds, newest first (the back-fill's order),
        streamed."""
        stmt = (
            sa.select(papers.c.arxiv_id)
            .select_from(self.joined)
            .where(stale)
            .order_by(papers.c.sort_date.desc(), papers.c.arxiv_id.desc())
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        for (arxiv_id,) in conn.execution_options(yield_per=5000).execute(stmt):
            yield arxiv_id

    def pending_count(self, conn: Connection, stale: sa.ColumnElement[bool]) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(self.joined).where(stale)
            ).scalar_one()
        )

    # --- writes and reads ----------------------------------------------------------------

    def upsert(
        self,
        conn: Connection,
        values: Sequence[Mapping[str, Any]],
        *,
        update: UpdateSet,
        where: UpdateWhere | None = None,
    ) -> int:
        """Insert `values`, rewriting a row with the same key by `update` (only where `where`
        holds), a chunk of rows a statement. Returns the rows inserted or rewritten."""
        changed = 0
        for chunk in chunks(values):
            stmt = insert(conn, self.table).values(list(chunk))
            new, old = stmt.excluded, self.table.c
            stmt = stmt.on_conflict_do_update(
                index_elements=[old[k] for k in self.key],
                set_=dict(update(new, old)),
                where=where(new, old) if where is not None else None,
            )
            # RETURNING lists only the rows written (rowcount is unreliable for multi-row
            # VALUES).
            changed += len(conn.execute(stmt.returning(old[self.key[0]])).all())
        return changed

    def rows_for(
        self, conn: Connection, ids: Sequence[str], *columns: sa.ColumnElement[Any]
    ) -> Iterator[AnyRow]:
        """`columns` of the stored rows of the papers among `ids` (one IN query per chunk)."""
        for chunk in chunks(list(dict.fromkeys(ids))):
            yield from conn.execute(sa.select(*columns).where(self.table.c.arxiv_id.in_(chunk)))
