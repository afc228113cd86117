"""The optional ML extra: its tests run only where it is installed."""

from __future__ import annotations

import importlib.util

from tests.conftest import need


def test_ml_extra_is_installed_for_the_ml_tests() -> None:
    need(
        importlib.util.find_spec("torch") is not None,
        "the ML extra is not installed (pip install -e '.[ml]'): tests/ml was not collected",
    )
