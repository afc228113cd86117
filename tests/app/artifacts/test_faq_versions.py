"""The FAQ across paper versions (app.artifacts.faqs): the answer of an older version that a
page shows, marked stale, while the current one has none, and which answers a fetched day
asks to be written again. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from app.artifacts import faqs
from app.artifacts.faqs import FaqKey, Lang
from app.db import store
from app.ingest.records import AnnounceKind, Announcement, PaperRecord

DAY = date(2026, 7, 1)
MODEL = "model-now"
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def record(
    n: int, version: int, *, category: str = "cs.CL", day: date | None = DAY, kind: str = "replace"
) -> PaperRecord:
    listed = [Announcement(category, day, AnnounceKind(kind))] if day else []
    return PaperRecord(
        arxiv_id=f"2606.{n:05d}",
        title=f"Paper {n}",
        abstract="We study tokenizers.",
        authors=["Ada Lovelace"],
        primary_category=category,
        categories=[category],
        version=version,
        first_submitted_at=T0,
        announcements=listed,
    )


def answer(
    engine: Engine, n: int, version: int, lang: Lang, model: str = MODEL, *, days: int = 0
) -> None:
    with engine.begin() as conn:
        faqs.save_faq(
            conn,
            FaqKey(f"2606.{n:05d}", version, lang, model),
            f"answer for v{version} {lang} by {model}",
            prompt_hash="p",
            finish_reason="stop",
            now=T0 + timedelta(days=days),
        )


def store_papers(engine: Engine, *records: PaperRecord) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, list(records))


def older(engine: Engine, n: int, version: int, lang: Lang = "en") -> faqs.FaqRow | None:
    with engine.connect() as conn:
        return faqs.older_answer(conn, FaqKey(f"2606.{n:05d}", version, lang, MODEL))


def keys_for(engine: Engine, day: date = DAY, category: str = "cs.CL") -> list[FaqKey]:
    with engine.connect() as conn:
        return faqs.regeneration_keys(conn, day, category, MODEL)


# --- the stale answer shown --------------------------------------------------------------


def test_the_newest_older_version_is_shown(engine: Engine) -> None:
    store_papers(engine, record(1, 3))
    assert older(engine, 1, 3) is None  # nothing stored at all
    answer(engine, 1, 1, "en")
    answer(engine, 1, 2, "en", model="another-model", days=1)
    answer(engine, 1, 2, "en", days=2)  # the configured model's wins within a version
    answer(engine, 1, 1, "zh")
    shown = older(engine, 1, 3)
    assert shown is not None
    assert (shown.key.version, shown.key.model, shown.key.lang) == (2, MODEL, "en")
    assert shown.content == f"answer for v2 en by {MODEL}"
    assert shown.created_at.tzinfo is not None
    zh = older(engine, 1, 3, "zh")
    assert zh is not None and zh.key.version == 1  # per language
    # Only older versions: the current version's own answers are not "stale".
    assert older(engine, 1, 1) is None
    v1 = older(engine, 1, 2)
    assert v1 is not None and v1.key.version == 1


def test_another_model_is_shown_when_the_configured_one_has_none(engine: Engine) -> None:
    store_papers(engine, record(1, 2))
    answer(engine, 1, 1, "en", model="another-model")
    shown = older(engine, 1, 2)
    assert shown is not None and shown.key.model == "another-model"


# --- what a fetched day asks to be written again ----------------------------------------


def test_regeneration_keys_per_replaced_paper_and_language(engine: Engine) -> None:
    store_papers(
        engine,
        record(1, 3),  # v1 had en and zh answers
        record(2, 2),  # v1 had an en answer, and v2 has one already
        record(3, 2),  # replaced, but nobody asked for its FAQ
        record(4, 1, kind="new"),  # new today
        record(5, 2, day=DAY - timedelta(days=1)),  # in another day's list
        record(6, 2, category="cs.LG"),  # in another category's list
    )
    answer(engine, 1, 1, "en")
    answer(engine, 1, 1, "en", model="another-model")  # one key for both models' answers
    answer(engine, 1, 2, "zh", model="another-model")
    answer(engine, 2, 1, "en")
    answer(engine, 2, 2, "en")
    answer(engine, 4, 1, "en")  # the current version's: nothing to write again
    answer(engine, 5, 1, "en")
    answer(engine, 6, 1, "en")
    assert keys_for(engine) == [
        FaqKey("2606.00001", 3, "en", MODEL),
        FaqKey("2606.00001", 3, "zh", MODEL),
    ]
    assert keys_for(engine, DAY - timedelta(days=1)) == [FaqKey("2606.00005", 2, "en", MODEL)]
    assert keys_for(engine, category="cs.LG") == [FaqKey("2606.00006", 2, "en", MODEL)]
    assert keys_for(engine, date(2026, 1, 1)) == []


def test_an_answer_by_another_model_for_the_current_version_still_asks(engine: Engine) -> None:
    # The configured model writes its own: that is the key a page looks up.
    store_papers(engine, record(1, 2))
    answer(engine, 1, 1, "en")
    answer(engine, 1, 2, "en", model="another-model")
    assert keys_for(engine) == [FaqKey("2606.00001", 2, "en", MODEL)]
