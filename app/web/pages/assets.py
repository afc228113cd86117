"""The two static files: the stylesheet and the reader tools' script."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter()

STATIC_DIR = Path(__file__).resolve().parents[3] / "static"


@router.get("/static/papershelf.css", include_in_schema=False)
def stylesheet() -> FileResponse:
    return FileResponse(STATIC_DIR / "papershelf.css", media_type="text/css")


@router.get("/static/papershelf.js", include_in_schema=False)
def script() -> FileResponse:
    """The reader tools (stars, read marks, filter bar, keys, theme, copy): one hand-written
    file, so a CSP of script-src 'self' holds; every page works without it."""
    return FileResponse(STATIC_DIR / "papershelf.js", media_type="text/javascript")
