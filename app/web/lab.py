"""`/lab`: the picture models side by side, computed on the ML pool while the page waits.

Three panels, each saying what it lacks instead of failing:
- a few figures (drawn here with Pillow: a line plot, bars, a scatter, a page of text) and
  their FSQ reconstructions with every tokenizer checkpoint found (the configured one and
  each `fsq*` folder beside it: several codebook sizes), with MSE and PSNR;
- the same noise (seeds 0 and 1) sampled by every solver at NFE 3, 5 and 9, with timings;
- the TL;DRs of one paper (`?id=`, default the newest) by the summarizer trained with
  cross-entropy and by the one trained with EMO, when checkpoints of both exist.
The job is `lab_compare` (workers/ml/); nothing here imports torch.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from PIL import Image, ImageDraw
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.artifacts import thumbnails
from app.db.queries import paper_or_newest
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.jobs import pictures as pool
from app.web.deps import EngineDep, SettingsDep
from app.web.pages.errors import error_page
from app.web.templating import TEMPLATES

router = APIRouter()

LAB_TIMEOUT_S = 180.0
FIGURE_SIZE = 256


# --- the originals ----------------------------------------------------------------------------


def _axes(draw: ImageDraw.ImageDraw, size: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = 28, 16, size - 12, size - 28
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(40, 40, 40), width=2)
    for i in range(1, 5):
        y = bottom - i * (bottom - top) // 5
        draw.line([(left, y), (right, y)], fill=(225, 225, 225), width=1)
    return left, top, right, bottom


def line_plot(size: int = FIGURE_SIZE) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = _axes(draw, size)
    for k, colour in enumerate([(31, 119, 180), (214, 39, 40), (44, 160, 44)]):
        pts = []
        for i in range(60):
            x = left + (right - left) * i / 59
            y = 0.5 + 0.35 * math.sin(i / 9 + k * 1.3) * math.exp(-i / (90 + 40 * k))
            pts.append((x, bottom - (bottom - top) * y))
        draw.line(pts, fill=colour, width=3)
    return img


def bar_chart(size: int = FIGURE_SIZE) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = _axes(draw, size)
    heights = [0.35, 0.8, 0.55, 0.9, 0.25, 0.65]
    width = (right - left) / len(heights)
    for i, h in enumerate(heights):
        x0 = left + i * width + width * 0.15
        colour = (255, 127, 14) if i % 2 else (31, 119, 180)
        draw.rectangle([x0, bottom - (bottom - top) * h, x0 + width * 0.7, bottom], fill=colour)
    return img


def scatter(size: int = FIGURE_SIZE) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = _axes(draw, size)
    for i in range(70):
        # A fixed low-discrepancy cloud around a rising line: no randomness, same every time.
        u = (i * 0.618034) % 1.0
        v = (i * 0.754877) % 1.0
        x = left + (right - left) * u
        y = bottom - (bottom - top) * min(0.95, max(0.05, 0.15 + 0.7 * u + 0.25 * (v - 0.5)))
        colour = (148, 103, 189) if i % 3 else (23, 190, 207)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
    return img


def text_page(size: int = FIGURE_SIZE) -> Image.Image:
    """Like the top of a paper's first page: a title, authors, two columns of text."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([40, 20, size - 40, 34], fill=(30, 30, 30))
    draw.rectangle([70, 44, size - 70, 50], fill=(110, 110, 110))
    for col in (0, 1):
        x0 = 16 + col * (size // 2)
        for row in range(22):
            y = 66 + row * 8
            w = (size // 2 - 28) * (0.6 if row % 7 == 6 else 1.0)
            draw.rectangle([x0, y, x0 + w, y + 3], fill=(90, 90, 90))
    return img


FIGURES = (
    ("line plot", line_plot),
    ("bar chart", bar_chart),
    ("scatter", scatter),
    ("text page", text_page),
)


def figure_pngs() -> list[bytes]:
    return [thumbnails.encode_png(draw()) for _name, draw in FIGURES]


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --- the page ---------------------------------------------------------------------------------


def _paper(engine: Engine, arxiv_id: str | None) -> tuple[str, str, str] | None:
    """(id, title, abstract) of the paper asked for, else of the newest one."""
    with engine.connect() as conn:
        row = paper_or_newest(conn, arxiv_id)
    return (row.arxiv_id, row.title, row.abstract) if row else None


def _with_uris(result: dict[str, Any]) -> dict[str, Any]:
    """Every PNG in the job's result as a data: URI the template can put in <img src>."""
    if isinstance(result, dict):
        return {k: _with_uris(v) for k, v in result.items()}
    if isinstance(result, list):
        return [_with_uris(v) for v in result]
    if isinstance(result, bytes):
        return data_uri(result)
    return result


@router.get("/lab", include_in_schema=False)
async def lab_page(
    request: Request, engine: EngineDep, settings: SettingsDep, id: str | None = None
) -> Response:
    arxiv_id = None
    if id:
        try:
            arxiv_id = parse_arxiv_id(id[:64])[0]
        except InvalidArxivId as exc:
            return error_page(request, 400, "Not a paper id", str(exc))
    paper = await run_in_threadpool(_paper, engine, arxiv_id)
    if arxiv_id is not None and paper is None:
        return error_page(request, 404, "Unknown paper", f"{arxiv_id} is not in the store")
    originals = await run_in_threadpool(figure_pngs)
    result: dict[str, Any] | None = None
    problem: str | None = None
    try:
        result = await pool.call(
            settings,
            pool.LAB_FUNCTION,
            originals,
            [paper[1], paper[2]] if paper else None,
            timeout=LAB_TIMEOUT_S,
        )
    except (pool.PoolUnavailable, pool.PoolTimeout, pool.PoolFailed) as exc:
        problem = str(exc)
    if result is not None and "error" in result:
        problem, result = str(result["error"]), None
    return TEMPLATES.TemplateResponse(
        request,
        "lab.html",
        {
            "problem": problem,
            "lab": _with_uris(result) if result else None,
            "originals": [
                (name, data_uri(png)) for (name, _draw), png in zip(FIGURES, originals, strict=True)
            ],
            "paper": paper,
            "settings": settings,
        },
        status_code=200,
    )
