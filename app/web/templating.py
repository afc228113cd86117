"""The Jinja2 templates every HTML router renders with, and their filters.

`install_filters` is called once by the app factory (`app.main`); nothing registers
filters as an import side effect.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates
from jinja2 import Environment

from app.web.markup import category_name, faq_inline, linkify, plaintex, rich

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "templates")
AUTHORS_SHOWN = 8  # longer author lists fold the rest into <details>


def install_filters(env: Environment) -> None:
    """The filters and globals the templates use (idempotent)."""
    env.filters["rich"] = rich
    env.filters["plaintex"] = plaintex
    env.filters["linkify"] = linkify
    env.filters["catname"] = category_name
    env.filters["faqinline"] = faq_inline
    env.globals["AUTHORS_SHOWN"] = AUTHORS_SHOWN
