"""Tables. Alembic (migrations/) owns the schema; these models must match it.

Search structures are dialect-specific and live only in the migrations: the SQLite FTS5
table `papers_fts` (external content over `papers`, kept in sync by triggers) and the
PostgreSQL generated column `papers.search_vector` with its GIN index. `app.search` fills
and rebuilds them (`SearchIndex`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite needs INTEGER (not BIGINT) for a rowid alias, which FTS5's content_rowid requires.
PK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)

    if TYPE_CHECKING:
        # Every model here maps one Table (DeclarativeBase types it as any FromClause), so
        # `Model.__table__.insert()` and friends type-check.
        __table__: ClassVar[Table]


class Paper(Base):
    __tablename__ = "papers"

    pk: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    arxiv_id: Mapped[str] = mapped_column(String(32), unique=True)
    version: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    # Ordered list of names; both search backends index its JSON text.
    authors: Mapped[list[str]] = mapped_column(JSON)
    primary_category: Mapped[str] = mapped_column(String(32))
    categories: Mapped[list[str]] = mapped_column(JSON)
    classes: Mapped[list[str] | None] = mapped_column(JSON)
    comments: Mapped[str | None] = mapped_column(Text)
    journal_ref: Mapped[str | None] = mapped_column(Text)
    doi: Mapped[str | None] = mapped_column(Text)
    license: Mapped[str | None] = mapped_column(Text)
    first_submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # First day arXiv announced it, when a listing source says so.
    announced_on: Mapped[date | None] = mapped_column(Date)
    # The day lists and keyset pages sort by: announced_on, else the v1 submission day.
    sort_date: Mapped[date] = mapped_column(Date)
    # Normalised title (app.ingest.text.title_key) for exact venue matching.
    title_key: Mapped[str] = mapped_column(Text, index=True)
    content_hash: Mapped[str] = mapped_column(String(32))
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Indexed: the full-text index's sync reads the rows changed since its watermark.
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    __table_args__ = (Index("ix_papers_sort_date_arxiv_id", "sort_date", "arxiv_id"),)


class PaperVersion(Base):
    __tablename__ = "paper_versions"

    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    size: Mapped[str | None] = mapped_column(String(32))


class PaperCategory(Base):
    """One row per (paper, category) so category filters are index lookups, not JSON scans."""

    __tablename__ = "paper_categories"

    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("ix_paper_categories_arxiv_id", "arxiv_id"),)


class Announcement(Base):
    """A paper in a category's list on an announcement day; a day's list is a query here."""

    __tablename__ = "announcements"

    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # new | cross | replace | replace-cross
    position: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_announcements_arxiv_id", "arxiv_id"),
        Index("ix_announcements_day", "day"),
    )


class Venue(Base):
    __tablename__ = "venues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. iclr2018
    paper_count: Mapped[int] = mapped_column(Integer, default=0)
    linked_count: Mapped[int] = mapped_column(Integer, default=0)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VenuePaper(Base):
    __tablename__ = "venue_papers"

    pk: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    venue: Mapped[str] = mapped_column(String(64), ForeignKey("venues.name", ondelete="CASCADE"))
    venue_paper_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text)
    title_key: Mapped[str] = mapped_column(Text, index=True)
    authors: Mapped[list[str]] = mapped_column(JSON)
    abstract: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(64))
    track: Mapped[str | None] = mapped_column(String(128))
    site: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str] | None] = mapped_column(JSON)
    tldr: Mapped[str | None] = mapped_column(Text)
    # The arXiv paper with the same normalised title, when there is exactly one.
    arxiv_id: Mapped[str | None] = mapped_column(String(32), index=True)

    __table_args__ = (UniqueConstraint("venue", "venue_paper_id"),)


class PaperClicks(Base):
    __tablename__ = "paper_clicks"

    arxiv_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pdf: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[int] = mapped_column(Integer, default=0)


# --- fetch bookkeeping (migration 0002); written only by app.db.runs ----------------------


class FetchRun(Base):
    """One fetch job's attempt: what it fetched from where, and how it ended."""

    __tablename__ = "fetch_runs"

    pk: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    job_id: Mapped[str | None] = mapped_column(String(128))  # arq's job id, when run by arq
    kind: Mapped[str] = mapped_column(String(32))  # rss | ids | oai-backfill | check | ...
    source: Mapped[str] = mapped_column(Text)  # URL or feed name
    category: Mapped[str | None] = mapped_column(String(32))
    day: Mapped[date | None] = mapped_column(Date)  # the listing day it was about
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    announcements: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class Harvest(Base):
    """Where an OAI-PMH harvest stands, so a restarted worker resumes instead of restarting."""

    __tablename__ = "harvest_states"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # oai:cs:FROM:UNTIL
    set_spec: Mapped[str] = mapped_column(String(64))
    date_from: Mapped[date | None] = mapped_column(Date)
    date_until: Mapped[date | None] = mapped_column(Date)
    resumption_token: Mapped[str | None] = mapped_column(Text)
    cursor: Mapped[int | None] = mapped_column(Integer)
    complete_list_size: Mapped[int | None] = mapped_column(Integer)
    harvested: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DayCheck(Base):
    """Whether a category's stored list for a day holds everything its feed announced."""

    __tablename__ = "day_checks"

    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    feed_count: Mapped[int] = mapped_column(Integer)
    stored_count: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool] = mapped_column(Boolean)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- related papers (migration 0003); written only by app.artifacts.related.build -------


class PaperKeywords(Base):
    """A paper's top TF-IDF keywords: [[term, weight], ...], best first, unit length."""

    __tablename__ = "paper_keywords"

    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )
    keywords: Mapped[list[list[str | float]]] = mapped_column(JSON)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- machine-written TL;DRs (migration 0004); written only by app.artifacts.summaries ----


class Summary(Base):
    """A paper's TL;DR from the ML pool, with what it was written from: a newer paper version
    or another model makes it stale (still shown, and written again by the pool)."""

    __tablename__ = "summaries"

    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )
    paper_version: Mapped[int | None] = mapped_column(Integer)  # papers.version it summarised
    model_version: Mapped[str] = mapped_column(String(128))  # Summarizer.version
    tldr: Mapped[str] = mapped_column(Text)
    # Indexed: the full-text index follows new TL;DRs (its has:tldr filter).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# --- the FAQ (migration 0005); written only by app.artifacts.faqs ----------------------


class Faq(Base):
    """One LLM answer to the six FAQ questions, per paper version, language and model."""

    __tablename__ = "faqs"

    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0: unknown version
    lang: Mapped[str] = mapped_column(String(8), primary_key=True)  # en | zh
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    # app.artifacts.faqs.Prompt.digest of the template it was made with.
    prompt_hash: Mapped[str] = mapped_column(String(16))
    # The model's finish_reason: "stop", or "length" when max_tokens cut the answer.
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- thumbnails (migrations 0006, 0007); written only by app.artifacts.thumbnails ----------


class Thumbnail(Base):
    """A paper's small picture from the ML pool: the FSQ tokens of its PDF's first page
    ("pdf"), or a placeholder sampled by the diffusion model ("generated"). The decoded PNG
    is kept so the site never needs the model; another model version makes the row stale."""

    __tablename__ = "thumbnails"

    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(16))  # pdf | generated
    # LoadedTokenizer.version (pdf) or LoadedDiffusion.version (generated).
    model_version: Mapped[str] = mapped_column(String(128))
    paper_version: Mapped[int | None] = mapped_column(Integer)  # the PDF's version (pdf only)
    # pdf only: the token grid, row-major uint16 little-endian, and the FSQ levels ("8,5,5,5").
    tokens: Mapped[bytes | None] = mapped_column(LargeBinary)
    grid_h: Mapped[int | None] = mapped_column(Integer)
    grid_w: Mapped[int | None] = mapped_column(Integer)
    levels: Mapped[str | None] = mapped_column(String(64))
    png: Mapped[bytes] = mapped_column(LargeBinary)
    # generated only: how it was sampled (the seed is seed_for_paper(arxiv_id)).
    solver: Mapped[str | None] = mapped_column(String(32))
    nfe: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # generated only (migration 0007): when a PDF was last tried for this paper and could not
    # be used; None when PDFs were off. With PDFs on, a placeholder is retried after a while.
    pdf_tried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- paper embeddings (migration 0009); written only by app.artifacts.embeddings ----------


class PaperEmbedding(Base):
    """A paper's sentence embedding from the ML pool (title and abstract, unit length), as
    float16 little-endian bytes. A newer paper version or another model makes it stale: still
    used for [Related] until the pool writes the new one."""

    __tablename__ = "paper_embeddings"

    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )
    paper_version: Mapped[int | None] = mapped_column(Integer)  # papers.version it embedded
    model_version: Mapped[str] = mapped_column(String(128))  # ml.embeddings Embedder.version
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# --- paper versions' text (migration 0012); written only by the store -----------------------


class PaperRevision(Base):
    """The text a version of a paper had, kept when a newer version replaced it (the current
    version's text is the paper row), for the "what changed" diff. `version` 0: the source
    did not say which version it was. Dates and sizes stay in `paper_versions`."""

    __tablename__ = "paper_revisions"

    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    authors: Mapped[list[str]] = mapped_column(JSON)
    comments: Mapped[str | None] = mapped_column(Text)
    journal_ref: Mapped[str | None] = mapped_column(Text)
    # When the store wrote this text (the paper row's changed_at then), and when it was replaced.
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    replaced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- code, data and venue badges (migration 0013) ------------------------------------------


class PaperLink(Base):
    """What a card's badges show, derived from the paper's abstract, comments and journal-ref
    (`app.ingest.links`) by the store whenever it writes the paper, so pages never parse
    per request. Only papers with a link or a venue have a row."""

    __tablename__ = "paper_links"

    arxiv_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("papers.arxiv_id", ondelete="CASCADE"), primary_key=True
    )
    has_code: Mapped[bool] = mapped_column(Boolean)
    # [{"kind": "code" | "model" | "dataset" | "demo" | "data" | "project", "url", "label"}]
    links: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    venue: Mapped[str | None] = mapped_column(String(200))  # e.g. "ICLR 2026 Oral"
    # The venue list it would be imported as (e.g. "iclr2026"), for the badge's link.
    venue_key: Mapped[str | None] = mapped_column(String(64))


# --- saved-search alerts (migration 0014) ---------------------------------------------------


class Alert(Base):
    """A saved search with a webhook, for the instance admin's users: fired once per fetched
    (category, day) that has new matches. The secret signs each POST (shown once at creation)."""

    __tablename__ = "alerts"

    pk: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    query: Mapped[str] = mapped_column(Text)  # the search text, as the search page takes it
    category: Mapped[str] = mapped_column(String(500), default="")  # an expression, or ""
    include_crosslists: Mapped[bool] = mapped_column(Boolean, default=True)
    include_replacements: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlertDelivery(Base):
    """One alert's matches in one fetched (category, day), and whether the POST landed: the
    unique key makes a day fire once across job retries and restarts."""

    __tablename__ = "alert_deliveries"

    pk: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(
        PK, ForeignKey("alerts.pk", ondelete="CASCADE"), index=True
    )
    category: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    arxiv_ids: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Failed rounds so far, and when a failed delivery is due again (None: not scheduled).
    rounds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    __table_args__ = (UniqueConstraint("alert_id", "category", "day"),)
