"""ML tests need the optional extra (`.[ml]`). Without torch they are not collected;
tests/test_extras.py then skips with the reason (and fails in CI, which installs it)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

if importlib.util.find_spec("torch") is None:
    collect_ignore_glob = ["test_*.py", "*/test_*.py"]


def ml_cli() -> typer.Typer:
    """`papershelf ml` as the admin CLI builds it: its defaults from this process's
    settings."""
    from app.cli.ml import ml_defaults
    from app.settings import get_settings
    from ml.cli import build

    return build(ml_defaults(get_settings()))
