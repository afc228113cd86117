"""The FAQ cache (table `faqs`): read by the web, written only by the LLM pool's job, and
written whole: one row in one transaction once the answer is complete, never a part."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from app.db.models import Faq, Paper
from app.db.store import _insert
from app.faq import FaqKey, Lang, PaperText

faqs_t = Faq.__table__
papers_t = Paper.__table__


@dataclass(frozen=True, slots=True)
class FaqRow:
    key: FaqKey
    content: str
    prompt_hash: str
    finish_reason: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "arxiv_id": self.key.arxiv_id,
            "version": self.key.version,
            "lang": self.key.lang,
            "model": self.key.model,
            "content": self.content,
            "prompt_hash": self.prompt_hash,
            "finish_reason": self.finish_reason,
            "created_at": self.created_at.isoformat(),
        }


def paper_text(conn: Connection, arxiv_id: str) -> PaperText | None:
    """The paper as the prompt needs it (its current version), or None if not stored."""
    row = conn.execute(
        select(
            papers_t.c.arxiv_id,
            papers_t.c.version,
            papers_t.c.title,
            papers_t.c.abstract,
            papers_t.c.authors,
        ).where(papers_t.c.arxiv_id == arxiv_id)
    ).first()
    if row is None:
        return None
    return PaperText(
        arxiv_id=row.arxiv_id,
        version=row.version or 0,
        title=row.title,
        abstract=row.abstract,
        authors=tuple(row.authors or ()),
    )


def get_faq(conn: Connection, key: FaqKey) -> FaqRow | None:
    row = conn.execute(
        select(faqs_t).where(
            faqs_t.c.arxiv_id == key.arxiv_id,
            faqs_t.c.version == key.version,
            faqs_t.c.lang == key.lang,
            faqs_t.c.model == key.model,
        )
    ).first()
    if row is None:
        return None
    created = row.created_at
    if created.tzinfo is None:  # SQLite hands back naive UTC
        created = created.replace(tzinfo=UTC)
    return FaqRow(key, row.content, row.prompt_hash, row.finish_reason, created)


def save_faq(
    conn: Connection,
    key: FaqKey,
    content: str,
    *,
    prompt_hash: str,
    finish_reason: str | None,
    now: datetime | None = None,
) -> FaqRow:
    """Store a complete answer (replacing an older one for the same key)."""
    if not content.strip():
        raise ValueError("refusing to cache an empty FAQ")
    created = now or datetime.now(UTC)
    values = {
        "arxiv_id": key.arxiv_id,
        "version": key.version,
        "lang": key.lang,
        "model": key.model,
        "content": content,
        "prompt_hash": prompt_hash,
        "finish_reason": finish_reason,
        "created_at": created,
    }
    stmt = _insert(conn, faqs_t).values(**values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[faqs_t.c.arxiv_id, faqs_t.c.version, faqs_t.c.lang, faqs_t.c.model],
            set_={
                k: stmt.excluded[k]
                for k in ("content", "prompt_hash", "finish_reason", "created_at")
            },
        )
    )
    return FaqRow(key, content, prompt_hash, finish_reason, created)


def find(
    conn: Connection, arxiv_id: str, lang: Lang, model: str
) -> tuple[PaperText | None, FaqKey | None, FaqRow | None]:
    """The paper, the key of its current version's answer, and that answer if stored."""
    paper = paper_text(conn, arxiv_id)
    if paper is None:
        return None, None, None
    key = FaqKey(arxiv_id, paper.version, lang, model)
    return paper, key, get_faq(conn, key)
