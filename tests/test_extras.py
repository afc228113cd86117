"""The optional ML extra: its tests run only where it is installed."""

from __future__ import annotations

import importlib.util

from tests.conftest import need


def test_ml_extra_is_installed_for_the_ml_tests() -> None:
    need(
        importlib.util.find_spec("torch") is not None,
        "the ML extra is not installed (pip install -e '.[ml]'): tests/ml was not collected",
    )


def test_the_vector_index_and_the_embedder_load_in_one_process() -> None:
    """The ML pool imports usearch (through app.vectors) before onnxruntime (the embedder);
    some usearch builds crash the interpreter when the two meet in that order."""
    import subprocess
    import sys

    need(importlib.util.find_spec("onnxruntime") is not None, "the ML extra is not installed")
    code = "import usearch.index, onnxruntime; print('loaded')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]
