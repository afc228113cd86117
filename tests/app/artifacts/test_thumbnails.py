"""Thumbnail storage (both databases) and image handling, without torch: round trip of
tokens and PNG, idempotent upserts, what makes a row stale, PDF rows outrank placeholders,
and Pillow's checks of uploads."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import Engine, select

from app.artifacts import thumbnails
from app.db import store
from app.db.models import Thumbnail
from app.ingest.records import AnnounceKind, Announcement, PaperRecord

DAY = date(2026, 7, 1)
T0 = datetime(2026, 7, 2, 12, tzinfo=UTC)


def rec(n: int, version: int | None = 1, cat: str = "cs.CV") -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2607.{n:05d}",
        title=f"P{n}",
        abstract=f"Abstract {n}.",
        authors=["Ada Lovelace"],
        primary_category=cat,
        categories=[cat],
        version=version,
        first_submitted_at=datetime(2026, 6, 28, tzinfo=UTC),
        announcements=[Announcement(cat, DAY, AnnounceKind.NEW, n)],
    )


def png(colour: tuple[int, int, int] = (10, 20, 30)) -> bytes:
    return thumbnails.encode_png(Image.new("RGB", (64, 64), colour))


GRID = [[(r * 16 + c) * 3 for c in range(16)] for r in range(16)]


def pdf_row(n: int, version: int | None = 1, model: str = "fsq-a", colour=(1, 2, 3)):  # type: ignore[no-untyped-def]
    return thumbnails.Written.from_tokens(
        f"2607.{n:05d}", version, model, GRID, [8, 5, 5, 5], png(colour)
    )


def gen_row(n: int, model: str = "diff-a", solver: str = "amed_plugin", nfe: int = 5):  # type: ignore[no-untyped-def]
    return thumbnails.Written(
        f"2607.{n:05d}", "generated", model, png((n, n, n)), solver=solver, nfe=nfe, seed=2**62 + n
    )


MODELS = thumbnails.Models(fsq="fsq-a", diffusion="diff-a", solver="amed_plugin", nfe=5)


def test_round_trip_and_idempotent_upserts(engine: Engine) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(1), rec(2), rec(3)])
        assert thumbnails.upsert(conn, [pdf_row(1), gen_row(2)], now=T0) == 2
    with engine.connect() as conn:
        got = thumbnails.get(conn, "2607.00001")
        gen = thumbnails.get(conn, "2607.00002")
        assert thumbnails.get(conn, "2607.00003") is None
    assert got is not None and gen is not None
    assert (got.source, got.model_version, got.paper_version) == ("pdf", "fsq-a", 1)
    assert got.tokens == GRID and got.levels == [8, 5, 5, 5] and got.png == png((1, 2, 3))
    assert (gen.source, gen.solver, gen.nfe, gen.seed) == ("generated", "amed_plugin", 5, 2**62 + 2)
    assert gen.tokens is None

    # The same rows again: nothing is written, created_at stays.
    with engine.begin() as conn:
        assert thumbnails.upsert(conn, [pdf_row(1), gen_row(2)], now=T0 + timedelta(hours=1)) == 0
    with engine.connect() as conn:
        again = thumbnails.get(conn, "2607.00001")
        shown = thumbnails.shown_thumbnails(conn, ["2607.00001", "2607.00002", "2607.00003"])
    assert again is not None and again.created_at == got.created_at
    assert set(shown) == {"2607.00001", "2607.00002"}
    assert shown["2607.00001"].startswith("/api/v1/papers/2607.00001/thumbnail.png?v=")

    # A changed picture is written, and its URL changes (cache-busting).
    with engine.begin() as conn:
        assert thumbnails.upsert(conn, [pdf_row(1, colour=(9, 9, 9))], now=T0 + timedelta(1)) == 1
    with engine.connect() as conn:
        assert (
            thumbnails.shown_thumbnails(conn, ["2607.00001"])["2607.00001"] != shown["2607.00001"]
        )


def test_pdf_thumbnails_outrank_placeholders_and_older_versions(engine: Engine) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(1, version=2), rec(2)])
        thumbnails.upsert(conn, [pdf_row(1, version=2), gen_row(2)], now=T0)
        # A placeholder never replaces a PDF thumbnail; an older version's PDF neither.
        assert thumbnails.upsert(conn, [gen_row(1), pdf_row(1, version=1, colour=(5, 5, 5))]) == 0
        # A PDF thumbnail replaces a placeholder.
        assert thumbnails.upsert(conn, [pdf_row(2)]) == 1
    with engine.connect() as conn:
        one, two = thumbnails.get(conn, "2607.00001"), thumbnails.get(conn, "2607.00002")
    assert one is not None and (one.source, one.paper_version) == ("pdf", 2)
    assert two is not None and two.source == "pdf"


def test_what_is_stale(engine: Engine) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(n) for n in range(1, 7)] + [rec(9, cat="cs.LG")])
        thumbnails.upsert(
            conn,
            [
                pdf_row(1),  # current
                pdf_row(2, model="fsq-old"),  # another tokenizer
                gen_row(3),  # current
                gen_row(4, model="diff-old"),  # another diffusion model
                gen_row(5, nfe=9),  # another NFE
            ],
            now=T0,
        )
        store.upsert_papers(conn, [rec(1, version=2)])  # a new version of paper 1
    ids = [f"2607.{n:05d}" for n in (1, 2, 3, 4, 5, 6, 9)]
    with engine.connect() as conn:
        pending = [p.arxiv_id for p in thumbnails.pending_for_ids(conn, ids, MODELS)]
        day = [p.arxiv_id for p in thumbnails.pending_for_day(conn, DAY, "cs.CV", MODELS)]
        newest = list(thumbnails.pending_ids(conn, MODELS))
        count = thumbnails.pending_count(conn, MODELS)
        # A pool without a diffusion model does not count placeholders as stale, nor one
        # without a tokenizer PDF thumbnails.
        only_fsq = thumbnails.Models(fsq="fsq-a")
        only_diff = thumbnails.Models(diffusion="diff-a")
        fsq_pending = {p.arxiv_id for p in thumbnails.pending_for_ids(conn, ids, only_fsq)}
        diff_pending = {p.arxiv_id for p in thumbnails.pending_for_ids(conn, ids, only_diff)}
    expected = ["2607.00001", "2607.00002", "2607.00004", "2607.00005", "2607.00006", "2607.00009"]
    assert pending == expected
    assert day == ["2607.00001", "2607.00002", "2607.00004", "2607.00005", "2607.00006"]
    assert sorted(newest) == sorted(expected) and count == len(expected)
    assert fsq_pending == {"2607.00001", "2607.00002", "2607.00006", "2607.00009"}
    assert diff_pending == {"2607.00004", "2607.00005", "2607.00006", "2607.00009"}


def test_with_pdfs_on_placeholders_wait_for_their_pdf(engine: Engine) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(n) for n in range(1, 5)])
        tried_then = replace(gen_row(3), pdf_tried_at=T0)
        tried_long_ago = replace(gen_row(4), pdf_tried_at=T0 - timedelta(days=30))
        thumbnails.upsert(conn, [pdf_row(1), gen_row(2), tried_then, tried_long_ago], now=T0)
    ids = [f"2607.{n:05d}" for n in range(1, 5)]
    with engine.connect() as conn:
        # PDFs off: every row is current.
        assert thumbnails.pending_for_ids(conn, ids, MODELS) == []
        # PDFs on: a placeholder made with PDFs off, or whose PDF was tried before the
        # cut-off, is stale; one tried since is not; a PDF thumbnail never is.
        on = replace(MODELS, pdf_retry_before=T0 - timedelta(days=7))
        stale = [p.arxiv_id for p in thumbnails.pending_for_ids(conn, ids, on)]
        assert stale == ["2607.00002", "2607.00004"]
        assert thumbnails.pending_count(conn, on) == 2

    # Trying the PDF again without a new picture: the row records it, its URL stays.
    with engine.begin() as conn:
        shown = thumbnails.shown_thumbnails(conn, ["2607.00002"])
        retried = replace(gen_row(2), pdf_tried_at=T0)
        assert thumbnails.upsert(conn, [retried], now=T0 + timedelta(days=1)) == 1
        assert thumbnails.shown_thumbnails(conn, ["2607.00002"]) == shown
        assert thumbnails.pending_for_ids(conn, ["2607.00002"], on) == []


def test_rows_go_with_their_paper(sqlite_engine: Engine) -> None:
    from sqlalchemy import text

    with sqlite_engine.begin() as conn:
        store.upsert_papers(conn, [rec(1)])
        thumbnails.upsert(conn, [gen_row(1)])
        conn.execute(text("DELETE FROM papers WHERE arxiv_id = '2607.00001'"))
        assert conn.execute(select(Thumbnail.__table__)).all() == []


# --- tokens and images ------------------------------------------------------------------------


@given(
    st.lists(st.lists(st.integers(0, 2**16 - 1), min_size=3, max_size=3), min_size=2, max_size=5)
)
def test_tokens_pack_and_unpack(grid: list[list[int]]) -> None:
    data = thumbnails.pack_tokens(grid)
    assert len(data) == 2 * 3 * len(grid)
    assert thumbnails.unpack_tokens(data, len(grid), 3) == grid


def test_token_checks() -> None:
    thumbnails.validate_tokens(GRID, (16, 16), 1000)
    with pytest.raises(thumbnails.BadTokens, match="16×16"):
        thumbnails.validate_tokens(GRID[:15], (16, 16), 1000)
    with pytest.raises(thumbnails.BadTokens, match=r"\[0, 1000\)"):
        thumbnails.validate_tokens([[1000] * 16] * 16, (16, 16), 1000)
    with pytest.raises(thumbnails.BadTokens, match="integers"):
        thumbnails.validate_tokens([[True] * 16] * 16, (16, 16), 1000)
    with pytest.raises(thumbnails.BadTokens, match="cannot hold"):
        thumbnails.unpack_tokens(b"\x00" * 5, 2, 2)


def encoded(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (200, 10, 10)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_images_are_checked_and_fitted(fmt: str) -> None:
    data = encoded(fmt)
    info = thumbnails.check_image(data)
    assert (info.format, info.width, info.height) == (fmt, 40, 30)
    fitted = thumbnails.fit_square(thumbnails.open_rgb(data))
    assert fitted.size == (64, 64) and fitted.mode == "RGB"
    assert fitted.getpixel((0, 0)) == (255, 255, 255)  # padded on white
    assert fitted.getpixel((32, 32))[0] > 150  # the image in the middle


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"definitely not an image", "not an image"),
        (encoded("PNG")[:60], "corrupt or truncated"),
        (encoded("TIFF"), "not accepted"),
    ],
)
def test_bad_images_are_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(thumbnails.BadImage, match=message):
        thumbnails.check_image(data)


def test_display_and_page_helpers() -> None:
    grey = Image.new("L", (32, 32), 100)
    shown = thumbnails.for_display(grey)
    assert shown.size == (64, 64) and shown.mode == "RGB"
    page = Image.new("RGB", (612, 792), "white")
    assert thumbnails.page_top(page).size == (64, 64)
    transparent = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    buf = io.BytesIO()
    transparent.save(buf, format="PNG")
    assert thumbnails.open_rgb(buf.getvalue()).getpixel((0, 0)) == (255, 255, 255)


def test_cards_never_show_a_fashion_placeholder(engine: Engine) -> None:
    """Placeholders an older pool drew with a Fashion-MNIST model (clothes) are hidden from
    cards; a plots model's placeholder and a PDF's first page are shown, with their source."""
    from app.listing import paper_cards

    fashion = gen_row(1, model="diffusion-fashion-0123456789+amed-amed_plugin-nfe5-abc")
    plots = gen_row(2, model="diffusion-plots-0123456789")
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(1), rec(2), rec(3)])
        thumbnails.upsert(conn, [fashion, plots, pdf_row(3)], now=T0)
    ids = ["2607.00001", "2607.00002", "2607.00003"]
    with engine.connect() as conn:
        shown = thumbnails.shown_on_cards(conn, ids)
        cards = paper_cards(conn, ids)
        stored = thumbnails.get(conn, "2607.00001")
    assert {k: v.source for k, v in shown.items()} == {
        "2607.00002": "generated",
        "2607.00003": "pdf",
    }
    assert cards["2607.00001"].thumbnail_url is None
    assert cards["2607.00002"].thumbnail_url == shown["2607.00002"].url
    assert (cards["2607.00002"].thumbnail_source, cards["2607.00003"].thumbnail_source) == (
        "generated",
        "pdf",
    )
    # The row is kept (the pool makes it again, as a PDF picture or a plots placeholder),
    # but not served: the picture API answers as the cards show.
    assert stored is not None and stored.model_version.startswith("diffusion-fashion-")
    with engine.connect() as conn:
        assert thumbnails.get(conn, "2607.00001", shown_only=True) is None
        assert thumbnails.get(conn, "2607.00002", shown_only=True) is not None

    # Once a plots model (or a PDF) replaces it, the card shows it.
    with engine.begin() as conn:
        thumbnails.upsert(conn, [gen_row(1, model="diffusion-plots-0123456789")])
    with engine.connect() as conn:
        assert "2607.00001" in thumbnails.shown_on_cards(conn, ids)
