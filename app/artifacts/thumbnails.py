"""Paper thumbnails: the `thumbnails` table, which papers need one, and the image handling
shared by the site and the ML pool (Pillow only: nothing here imports torch or numpy).

The ML pool makes a 64×64 picture per paper: the FSQ tokens of its PDF's
first page when one can be fetched (source "pdf"), else a placeholder sampled by the
diffusion model, deterministic per paper id (source "generated"). The decoded PNG is stored
with the tokens, so the site serves it without the model. A row is *current* when it was
made by the model the pool runs (and, for a PDF, from the paper's current version; for a
placeholder, with the configured solver and NFE); otherwise it is *stale*: still shown, and
made again. A PDF thumbnail is never replaced by a placeholder.

Cards show a placeholder only when a model trained on the plots drew it: the pool draws no
other, and rows an older pool drew with a Fashion-MNIST model (garments) are hidden until
they are made again.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

import sqlalchemy as sa
from PIL import Image, UnidentifiedImageError
from sqlalchemy import Connection

from app.artifacts.base import ArtifactTable, not_older
from app.db.models import Paper, Thumbnail
from app.db.statements import chunks

papers = Paper.__table__
thumbnails_t = Thumbnail.__table__
THUMBNAILS = ArtifactTable(thumbnails_t)

Source = Literal["pdf", "generated"]
SIZE = 64  # the tokenizer's input and the card's picture, in pixels
# Pillow refuses to open anything larger (decompression bombs); uploads are far smaller.
MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")


# --- images --------------------------------------------------------------------------------


class BadImage(ValueError):
    """Bytes that are not a readable image (the message says why, for the user)."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str


def check_image(data: bytes) -> ImageInfo:
    """What `data` is, after Pillow has decoded it fully (a truncated or corrupt file fails
    here, not later in the ML pool). Raises BadImage."""
    if not data:
        raise BadImage("the upload is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or "?"
            if fmt not in ACCEPTED_FORMATS:
                raise BadImage(f"{fmt} images are not accepted (PNG, JPEG, WebP, GIF or BMP)")
            if img.width * img.height > MAX_PIXELS:
                raise BadImage(f"the image is too large ({img.width}×{img.height} pixels)")
            info = ImageInfo(fmt, img.width, img.height, img.mode)
            img.load()  # decodes every byte: truncation shows up now
    except BadImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise BadImage(f"not an image Pillow can read ({type(exc).__name__})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImage(f"the image is corrupt or truncated: {exc}") from None
    return info


def open_rgb(data: bytes) -> Image.Image:
    """The image in `data` as RGB (transparency over white). Raises BadImage."""
    check_image(data)
    with Image.open(io.BytesIO(data)) as img:
        img.seek(0)  # the first frame of an animation
        rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def fit_square(img: Image.Image, size: int = SIZE) -> Image.Image:
    """The whole image in a `size`×`size` square, centred on white (the tokenizer's input)."""
    img = img.convert("RGB")
    scale = size / max(img.width, img.height)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    out = Image.new("RGB", (size, size), (255, 255, 255))
    out.paste(img.resize((w, h), Image.Resampling.LANCZOS), ((size - w) // 2, (size - h) // 2))
    return out


def page_top(img: Image.Image, size: int = SIZE) -> Image.Image:
    """A PDF page's thumbnail: its top square (title block, often a teaser figure), which
    says more at 64 px than the whole page shrunk."""
    img = img.convert("RGB")
    side = min(img.width, img.height)
    left = (img.width - side) // 2
    return img.crop((left, 0, left + side, side)).resize((size, size), Image.Resampling.LANCZOS)


def for_display(img: Image.Image, size: int = SIZE) -> Image.Image:
    """RGB, at least `size` pixels wide: a grey 32×32 sample is scaled up (nearest: crisp)."""
    img = img.convert("RGB")
    if img.width < size:
        factor = -(-size // img.width)
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    return img


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --- FSQ tokens -----------------------------------------------------------------------------


class BadTokens(ValueError):
    """A token grid that does not fit the tokenizer (the message says why)."""


def validate_tokens(
    grid: Sequence[Sequence[int]], shape: tuple[int, int], codebook_size: int
) -> None:
    """`grid` must be shape[0] rows of shape[1] integers in [0, codebook_size)."""
    h, w = shape
    if len(grid) != h or any(len(row) != w for row in grid):
        got = f"{len(grid)}×{len(grid[0]) if grid else 0}"
        raise BadTokens(f"expected a {h}×{w} grid of tokens, got {got}")
    for row in grid:
        for t in row:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < codebook_size:
                raise BadTokens(f"tokens must be integers in [0, {codebook_size}); got {t!r}")


def pack_tokens(grid: Sequence[Sequence[int]]) -> bytes:
    """Row-major uint16 little-endian: 2 bytes a token (codebooks up to 2^16)."""
    flat = [int(t) for row in grid for t in row]
    return struct.pack(f"<{len(flat)}H", *flat)


def unpack_tokens(data: bytes, h: int, w: int) -> list[list[int]]:
    if len(data) != 2 * h * w:
        raise BadTokens(f"{len(data)} bytes cannot hold a {h}×{w} grid of uint16 tokens")
    flat = struct.unpack(f"<{h * w}H", data)
    return [list(flat[r * w : (r + 1) * w]) for r in range(h)]


# --- what needs a thumbnail -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Models:
    """What the ML pool runs: the versions a current row must have been made with."""

    fsq: str | None = None
    diffusion: str | None = None
    solver: str = "amed_plugin"
    nfe: int = 5
    # Set when the pool fetches PDFs: a placeholder whose PDF was not tried since then (or
    # never: it was made with PDFs off) is stale, so it gets its PDF picture when one exists.
    pdf_retry_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    arxiv_id: str
    version: int | None


def _needs_thumbnail(models: Models) -> sa.ColumnElement[bool]:
    """On `THUMBNAILS.joined`: no thumbnail, or one the pool would make differently now. A PDF
    thumbnail is stale for a new paper version or another tokenizer (when the pool has
    one); a placeholder for another diffusion model, solver or NFE (when it has one), and,
    when the pool fetches PDFs, for a PDF not tried since `pdf_retry_before`."""
    t = thumbnails_t.c
    stale: list[sa.ColumnElement[bool]] = [t.arxiv_id.is_(None)]
    if models.fsq is not None:
        stale.append(
            sa.and_(
                t.source == "pdf",
                sa.or_(
                    t.model_version != models.fsq,
                    t.paper_version.is_distinct_from(papers.c.version),
                ),
            )
        )
    if models.diffusion is not None:
        stale.append(
            sa.and_(
                t.source == "generated",
                sa.or_(
                    t.model_version != models.diffusion,
                    t.solver.is_distinct_from(models.solver),
                    t.nfe.is_distinct_from(models.nfe),
                ),
            )
        )
    if models.pdf_retry_before is not None:
        stale.append(
            sa.and_(
                t.source == "generated",
                sa.or_(t.pdf_tried_at.is_(None), t.pdf_tried_at < models.pdf_retry_before),
            )
        )
    return sa.or_(*stale)


_PENDING_COLUMNS = (papers.c.arxiv_id, papers.c.version)


def pending_for_ids(conn: Connection, ids: Sequence[str], models: Models) -> list[Pending]:
    """The stored papers among `ids` lacking a current thumbnail, in the order given."""
    rows = THUMBNAILS.pending_for_ids(conn, ids, _needs_thumbnail(models), _PENDING_COLUMNS)
    return [Pending(*r) for r in rows]


def pending_for_day(conn: Connection, day: date, category: str, models: Models) -> list[Pending]:
    """The papers of a day's list lacking a current thumbnail."""
    rows = THUMBNAILS.pending_for_day(
        conn, day, category, _needs_thumbnail(models), _PENDING_COLUMNS
    )
    return [Pending(*r) for r in rows]


def pending_ids(conn: Connection, models: Models, *, limit: int | None = None) -> Iterator[str]:
    """Ids of papers lacking a current thumbnail, newest first (the back-fill's order)."""
    return THUMBNAILS.pending_ids(conn, _needs_thumbnail(models), limit=limit)


def pending_count(conn: Connection, models: Models) -> int:
    return THUMBNAILS.pending_count(conn, _needs_thumbnail(models))


# --- writes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Written:
    """One thumbnail as the pool made it."""

    arxiv_id: str
    source: Source
    model_version: str
    png: bytes
    paper_version: int | None = None
    tokens: bytes | None = None
    grid_h: int | None = None
    grid_w: int | None = None
    levels: str | None = None
    solver: str | None = None
    nfe: int | None = None
    seed: int | None = None
    pdf_tried_at: datetime | None = None  # a placeholder made after its PDF failed

    @classmethod
    def from_tokens(
        cls,
        arxiv_id: str,
        paper_version: int | None,
        model_version: str,
        grid: Sequence[Sequence[int]],
        levels: Sequence[int],
        png: bytes,
    ) -> Written:
        return cls(
            arxiv_id,
            "pdf",
            model_version,
            png,
            paper_version=paper_version,
            tokens=pack_tokens(grid),
            grid_h=len(grid),
            grid_w=len(grid[0]) if grid else 0,
            levels=",".join(str(n) for n in levels),
        )


_COLUMNS = (
    "source",
    "model_version",
    "paper_version",
    "tokens",
    "grid_h",
    "grid_w",
    "levels",
    "png",
    "solver",
    "nfe",
    "seed",
    "pdf_tried_at",
)


def upsert(conn: Connection, rows: Iterable[Written], *, now: datetime | None = None) -> int:
    """Store thumbnails (idempotent). A row is rewritten only when something differs; a
    placeholder never replaces a PDF thumbnail, and a PDF thumbnail never replaces one made
    from a newer paper version. Returns the rows inserted or changed."""
    now = now or datetime.now(UTC)
    values = [
        {"arxiv_id": r.arxiv_id, **{c: getattr(r, c) for c in _COLUMNS}, "created_at": now}
        for r in rows
    ]
    return THUMBNAILS.upsert(
        conn,
        values,
        update=lambda new, old: {
            **{c: getattr(new, c) for c in _COLUMNS},
            # Only a new picture gets a new URL (a retried PDF may change nothing shown).
            "created_at": sa.case(
                (sa.and_(old.png == new.png, old.source == new.source), old.created_at),
                else_=new.created_at,
            ),
        },
        where=lambda new, old: sa.and_(
            sa.or_(old.source != "pdf", new.source == "pdf"),
            sa.or_(old.source != "pdf", not_older(new, old)),
            sa.or_(*(getattr(old, c).is_distinct_from(getattr(new, c)) for c in _COLUMNS)),
        ),
    )


# --- reads for the pages and the API --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    arxiv_id: str
    source: Source
    model_version: str
    paper_version: int | None
    png: bytes
    created_at: datetime
    solver: str | None = None
    nfe: int | None = None
    seed: int | None = None
    tokens: list[list[int]] | None = None
    levels: list[int] | None = None

    @property
    def etag(self) -> str:
        return f'"{tag(self.model_version, self.created_at)}"'


def tag(model_version: str, created_at: datetime) -> str:
    """Changes whenever the picture does (cache-busting for the card's URL)."""
    stamp = created_at.replace(tzinfo=created_at.tzinfo or UTC).isoformat()
    return hashlib.sha1(f"{model_version}|{stamp}".encode()).hexdigest()[:12]


def get(conn: Connection, arxiv_id: str, *, shown_only: bool = False) -> Stored | None:
    """The stored row; with `shown_only`, None for one cards hide (a Fashion placeholder)."""
    t = thumbnails_t.c
    query = sa.select(thumbnails_t).where(t.arxiv_id == arxiv_id)
    if shown_only:
        query = query.where(_shown_on_cards())
    row = conn.execute(query).first()
    if row is None:
        return None
    grid = (
        unpack_tokens(row.tokens, row.grid_h, row.grid_w)
        if row.tokens is not None and row.grid_h and row.grid_w
        else None
    )
    levels = [int(n) for n in row.levels.split(",")] if row.levels else None
    return Stored(
        row.arxiv_id,
        row.source,
        row.model_version,
        row.paper_version,
        row.png,
        row.created_at,
        row.solver,
        row.nfe,
        row.seed,
        grid,
        levels,
    )


def url(arxiv_id: str, model_version: str, created_at: datetime) -> str:
    return f"/api/v1/papers/{arxiv_id}/thumbnail.png?v={tag(model_version, created_at)}"


# Placeholders drawn by these models are never shown: a diffusion model's version names the
# data set it learned (`diffusion-<dataset>-<digest>`), and Fashion-MNIST draws clothes.
HIDDEN_PLACEHOLDER_MODELS = ("diffusion-fashion-",)


def _shown_on_cards() -> sa.ColumnElement[bool]:
    t = thumbnails_t.c
    return sa.not_(
        sa.and_(
            t.source == "generated",
            sa.or_(*(t.model_version.startswith(p) for p in HIDDEN_PLACEHOLDER_MODELS)),
        )
    )


@dataclass(frozen=True, slots=True)
class Shown:
    """A card's picture: its URL and where it came from (the card's alt text says so)."""

    url: str
    source: Source


def shown_on_cards(conn: Connection, ids: Sequence[str]) -> dict[str, Shown]:
    """The thumbnail per paper among `ids` that has one a card may show (one IN query per
    500 ids)."""
    t = thumbnails_t.c
    out: dict[str, Shown] = {}
    for chunk in chunks(list(dict.fromkeys(ids))):
        query = sa.select(t.arxiv_id, t.model_version, t.created_at, t.source).where(
            t.arxiv_id.in_(chunk), _shown_on_cards()
        )
        for a, m, c, source in conn.execute(query):
            out[a] = Shown(url(a, m, c), source)
    return out


def shown_thumbnails(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    """The thumbnail URL per paper among `ids` that has one a card may show."""
    return {a: shown.url for a, shown in shown_on_cards(conn, ids).items()}
