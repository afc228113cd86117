"""Paper embeddings: the `paper_embeddings` table, which papers need one, and reads of the
stored vectors for [Related], "for you" and the vector index (app.vectors).

The ML pool computes them (ml.embeddings: all-MiniLM-L6-v2 over title and abstract, mean
pooled, unit length); this module decides what to embed and stores the results, so nothing
here imports torch. A vector is stored as float16 little-endian bytes (768 bytes for 384
dimensions: the rounding moves a cosine by ~1e-4, far below what reorders neighbours). Like
a TL;DR, a stored embedding records the paper version and the model version it came from;
it is *stale* when either differs from the paper's or the running pool's, and stale vectors
are still served until the pool writes the new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection

from app.artifacts.base import ArtifactTable, not_older
from app.db.models import Paper, PaperEmbedding

papers = Paper.__table__
embeddings_t = PaperEmbedding.__table__
EMBEDDINGS = ArtifactTable(embeddings_t)

#: How vectors are stored: float16, little-endian.
STORED_DTYPE = np.dtype("<f2")


def encode(vector: np.ndarray) -> bytes:
    """A vector's stored bytes (float16 little-endian)."""
    return np.asarray(vector, dtype=np.float32).astype(STORED_DTYPE).tobytes()


def decode(raw: bytes, dim: int | None = None) -> np.ndarray:
    """A stored vector as float32; `dim` checks the length when given."""
    vec = np.frombuffer(raw, dtype=STORED_DTYPE).astype(np.float32)
    if dim is not None and vec.shape[0] != dim:
        raise ValueError(f"stored vector has {vec.shape[0]} dimensions, expected {dim}")
    return vec


# --- what needs an embedding ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """A paper to embed, with the version its embedding will be recorded against."""

    arxiv_id: str
    version: int | None
    title: str
    abstract: str


def _needs_embedding(model_version: str | None) -> sa.ColumnElement[bool]:
    """On `EMBEDDINGS.joined`: no embedding, one for another paper version, or (when the
    model is known) one from another model."""
    stale = [
        embeddings_t.c.arxiv_id.is_(None),
        embeddings_t.c.paper_version.is_distinct_from(papers.c.version),
    ]
    if model_version is not None:
        stale.append(embeddings_t.c.model_version != model_version)
    return sa.or_(*stale)


_PENDING_COLUMNS = (papers.c.arxiv_id, papers.c.version, papers.c.title, papers.c.abstract)


def pending_for_day(
    conn: Connection, day: date, category: str, model_version: str
) -> list[Pending]:
    """The papers of a day's list (every kind) lacking a current embedding."""
    rows = EMBEDDINGS.pending_for_day(
        conn, day, category, _needs_embedding(model_version), _PENDING_COLUMNS
    )
    return [Pending(*r) for r in rows]


def pending_for_ids(conn: Connection, ids: Sequence[str], model_version: str) -> list[Pending]:
    """The stored papers among `ids` lacking a current embedding, in the order given."""
    rows = EMBEDDINGS.pending_for_ids(conn, ids, _needs_embedding(model_version), _PENDING_COLUMNS)
    return [Pending(*r) for r in rows]


def pending_ids(
    conn: Connection, model_version: str | None, *, limit: int | None = None
) -> Iterator[str]:
    """Ids of papers lacking a current embedding, newest first (the back-fill's order),
    streamed. With `model_version` None, embeddings of any model count as current."""
    return EMBEDDINGS.pending_ids(conn, _needs_embedding(model_version), limit=limit)


def pending_count(conn: Connection, model_version: str | None) -> int:
    return EMBEDDINGS.pending_count(conn, _needs_embedding(model_version))


# --- writes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Written:
    arxiv_id: str
    paper_version: int | None
    model_version: str
    vector: np.ndarray  # float32, unit length


def upsert(conn: Connection, rows: Iterable[Written], *, now: datetime | None = None) -> int:
    """Store embeddings (idempotent). A row is rewritten only for a newer-or-equal paper
    version with another model or version (a slow job must not undo a newer embedding).
    `created_at` moves with every rewrite: the vector index picks up rows by it. Returns the
    rows inserted or changed."""
    now = now or datetime.now(UTC)
    values = [
        {
            "arxiv_id": r.arxiv_id,
            "paper_version": r.paper_version,
            "model_version": r.model_version,
            "dim": int(np.asarray(r.vector).shape[-1]),
            "vector": encode(r.vector),
            "created_at": now,
        }
        for r in rows
    ]
    return EMBEDDINGS.upsert(
        conn,
        values,
        update=lambda new, old: {
            "paper_version": new.paper_version,
            "model_version": new.model_version,
            "dim": new.dim,
            "vector": new.vector,
            "created_at": new.created_at,
        },
        where=lambda new, old: sa.and_(
            not_older(new, old),
            sa.or_(
                old.paper_version.is_distinct_from(new.paper_version),
                old.model_version != new.model_version,
            ),
        ),
    )


# --- reads ---------------------------------------------------------------------------------


def vectors_for(conn: Connection, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The stored vectors (float32) of the papers among `ids` that have one."""
    return {
        arxiv_id: decode(raw, dim)
        for arxiv_id, dim, raw in EMBEDDINGS.rows_for(
            conn, ids, embeddings_t.c.arxiv_id, embeddings_t.c.dim, embeddings_t.c.vector
        )
    }


def vector_for(conn: Connection, arxiv_id: str) -> np.ndarray | None:
    return vectors_for(conn, [arxiv_id]).get(arxiv_id)


def stored_count(conn: Connection) -> int:
    """How many papers have an embedding (of any version)."""
    return int(conn.scalar(sa.select(sa.func.count()).select_from(embeddings_t)) or 0)


def has_embeddings(conn: Connection) -> bool:
    """Whether the pool has written any embedding yet."""
    return conn.scalar(sa.select(embeddings_t.c.arxiv_id).limit(1)) is not None


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch of stored vectors, in `papers.pk` order: what the vector index is built from."""

    pks: np.ndarray  # int64 papers.pk: the index's keys
    ids: list[str]  # arxiv ids, aligned with pks
    vectors: np.ndarray  # float32 (n, dim)
    stamps: np.ndarray  # int64: each row's `created_at` (`stamp`), aligned with ids
    last_created_at: datetime | None  # the newest `created_at` in the batch


def stream_vectors(
    conn: Connection,
    *,
    since: datetime | None = None,
    batch: int = 20_000,
) -> Iterator[StoredBatch]:
    """Every stored vector (or those written after `since`), `batch` at a time in
    `papers.pk` order (keyset pages)."""
    last_pk: int | None = None
    while True:
        q = sa.select(
            papers.c.pk,
            papers.c.arxiv_id,
            embeddings_t.c.dim,
            embeddings_t.c.vector,
            embeddings_t.c.created_at,
        ).select_from(embeddings_t.join(papers, papers.c.arxiv_id == embeddings_t.c.arxiv_id))
        order: sa.ColumnElement[int] = papers.c.pk
        if since is not None:
            q = q.where(embeddings_t.c.created_at > since)
            # Ordered by an expression, not the column: otherwise SQLite walks every paper
            # in pk order (to stop at the limit) and looks each one's vector up, instead of
            # reading the few recent rows through the `created_at` index and sorting them.
            order = papers.c.pk + 0
        if last_pk is not None:
            q = q.where(papers.c.pk > last_pk)
        rows = conn.execute(q.order_by(order).limit(batch)).all()
        if not rows:
            return
        dim = rows[0].dim
        vectors = np.empty((len(rows), dim), dtype=np.float32)
        for i, r in enumerate(rows):
            vectors[i] = decode(r.vector, dim)
        created = [_aware(r.created_at) for r in rows]
        yield StoredBatch(
            pks=np.fromiter((r.pk for r in rows), dtype=np.int64, count=len(rows)),
            ids=[r.arxiv_id for r in rows],
            vectors=vectors,
            stamps=np.fromiter((stamp(c) for c in created), dtype=np.int64, count=len(rows)),
            last_created_at=max(created),
        )
        last_pk = rows[-1].pk


def written_since(conn: Connection, since: datetime) -> tuple[int, int | None]:
    """How many stored vectors were written after `since`, and the newest one's stamp
    (None when none): one count over the `created_at` index, no vector read."""
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.max(embeddings_t.c.created_at)).where(
            embeddings_t.c.created_at > since
        )
    ).one()
    newest = row[1]
    if isinstance(newest, str):  # SQLite hands back an aggregate's datetime as text
        newest = datetime.fromisoformat(newest)
    return int(row[0]), stamp(newest) if newest is not None else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp(ts: datetime) -> int:
    """A `created_at` as integer microseconds since 1970 (exact: both databases keep
    microseconds), so a reader can tell a row it holds from a rewrite of it."""
    return (_aware(ts) - _EPOCH) // timedelta(microseconds=1)


def _aware(ts: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were stored as UTC."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
