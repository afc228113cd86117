"""`papershelf reindex`'s progress display: a bar with steps, rate and time left on a
terminal; plain lines elsewhere, so a log shows the progress too."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from app.cli import reindex


def test_a_terminal_gets_a_bar_with_rate_and_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(reindex, "err", console)
    with reindex._Steps("embeddings", 10) as steps:
        steps.advance(4)
        steps.advance(6)
    shown = screen.getvalue()
    assert "embeddings" in shown and "10/10" in shown
    assert "papers/s" in shown and "ETA" in shown


def test_elsewhere_plain_lines_also_without_a_total(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr(reindex, "err", Console(file=log, force_terminal=False, width=200))
    monkeypatch.setattr(reindex, "PLAIN_EVERY_S", 0.0)
    with reindex._Steps("vector index", None, unit="vectors") as steps:
        steps.reached(5)
        steps.reached(12)
    lines = log.getvalue().splitlines()
    # The closing line is not repeated when the last one shows the end already.
    assert [line.split(",")[0] for line in lines] == [
        "vector index: 5 vectors",
        "vector index: 12 vectors",
    ]
    assert "vectors/s" in lines[-1] and "ETA" not in lines[-1]

    monkeypatch.setattr(reindex, "PLAIN_EVERY_S", 3600.0)
    log.truncate(0)
    log.seek(0)
    with reindex._Steps("embeddings", 30) as steps:
        steps.advance(10)
        steps.advance(20)
    (line,) = log.getvalue().splitlines()  # only the closing line within the interval
    assert line.startswith("embeddings: 30/30 papers (100%), ")
