"""bench/arxiv_api.py's own parts: the cases, the percentiles, the quality guard's verdicts,
and a smoke run through a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.search.arxiv_query import parse_search_query
from bench.arxiv_api import (
    CASES,
    DESIGNS,
    INDEX,
    WINDOW,
    Check,
    guard_ok,
    id_list_case,
    main,
    p50_p95,
)


def test_every_case_parses_and_names_its_baseline() -> None:
    for case in CASES:
        assert parse_search_query(case.query["search_query"]) is not None, case.name
        assert case.query["max_results"] == "10"
    # Only the comment search has no equivalent in /api/v1/search.
    assert [c.name for c in CASES if c.ours is None] == ["comment"]
    deep = next(c for c in CASES if c.name == "start=1000")
    assert deep.query["start"] == "1000" and deep.ours is not None
    assert deep.ours["offset"] == "1000"
    by_date = next(c for c in CASES if c.name == "by date")
    assert by_date.ours is not None and by_date.ours["sort"] == "date"
    listed = id_list_case([f"2601.{i:05d}" for i in range(50)])
    assert listed.query["id_list"].count(",") == 49 and not listed.searches


def test_percentiles() -> None:
    assert p50_p95([float(i) for i in range(1, 101)]) == (50.5, 95.0)
    assert p50_p95([3.0, 1.0, 2.0]) == (2.0, 3.0)
    assert p50_p95([]) == (0.0, 0.0)


def check(design: str, total: int, same_ids: bool | None) -> Check:
    return Check("s", "c", design, 10, total, total == 10, same_ids, 1.0)


def test_the_guard_fails_on_another_total_or_other_ids() -> None:
    assert guard_ok([check(WINDOW, 10, True), check(WINDOW, 10, None)])
    assert not guard_ok([check(WINDOW, 11, True)])
    assert not guard_ok([check(WINDOW, 10, False)])
    # The index design is reported, not required of the shipped one.
    assert guard_ok([check(WINDOW, 10, True), check(INDEX, 9, False)])


def test_a_quick_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    assert main(["--quick", "--real", "600", "--repeat", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = data["rows"]
    # Each case (and the id list): a baseline row (but the comment search) and one per
    # design, every call answered 200.
    assert len(rows) == (len(CASES) + 1) * (1 + len(DESIGNS)) - 1
    assert all(r["statuses"] == [200] for r in rows)
    assert {r["design"] for r in rows} >= {*DESIGNS, "/api/v1/search"}
    searched = {c["case"] for c in data["checks"]}
    assert "common word" in searched and "id_list of 50" not in searched
    assert all(c["same_total"] for c in data["checks"] if c["design"] == WINDOW)
    printed = capsys.readouterr().out
    assert "quality guard: ok" in printed and "x base" in printed
