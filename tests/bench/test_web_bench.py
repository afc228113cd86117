"""bench/web.py's own parts: the baseline app, the load loop and the server lifecycle."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

from fastapi.testclient import TestClient

from bench.web import (
    Result,
    Server,
    _httpx_load,
    _wrk_script,
    add,
    child_env,
    make_bare_app,
    report_scaling,
    site_notes,
)


def test_bare_app_returns_exactly_the_size_asked_for() -> None:
    for size in (10, 1000, 536_624):
        resp = TestClient(make_bare_app(size)).get("/")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/html")
        assert len(resp.content) == size


def test_child_env_switches_the_rate_limit_off_and_drops_other_settings(
    tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAPERSHELF_DATABASE_URL", "postgresql://elsewhere/db")
    env = child_env(tmp_path)
    assert env["PAPERSHELF_DATA_DIR"] == str(tmp_path)
    assert env["PAPERSHELF_RATE_LIMIT_PER_MINUTE"] == "0"
    assert "PAPERSHELF_DATABASE_URL" not in env


def test_child_env_points_at_the_database_it_is_given(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = child_env(tmp_path, "postgresql://127.0.0.1/bench")
    assert env["PAPERSHELF_DATABASE_URL"] == "postgresql://127.0.0.1/bench"


def test_wrk_script_walks_the_paths_in_turn() -> None:
    script = _wrk_script(["/arxiv/2501.00001", '/search?q="x"'])
    assert 'local paths = {"/arxiv/2501.00001", "/search?q=\\"x\\""}' in script
    assert "paths[(i - 1) % #paths + 1]" in script and "wrk.format(nil" in script


def result(route: str, rps: float, **extra: object) -> Result:
    r = Result(route, "/", 8, 1.0, int(rps), [1.0], Counter({200: int(rps)}))
    r.extra.update(extra)
    return r


def test_repeated_runs_of_a_route_are_one_row() -> None:
    rows: list[Result] = []
    add(rows, result("latest listing", 100, p50_ms=2.0))
    add(rows, result("latest listing, dated", 120))
    add(rows, result("latest listing", 300, p50_ms=4.0))
    assert [r.route for r in rows] == ["latest listing", "latest listing, dated"]
    assert rows[0].rps == 200 and rows[0].seconds == 2.0 and rows[0].extra["runs"] == 2
    assert rows[0].extra["p50_ms"] == 3.0 and rows[0].statuses[200] == 400


def test_latest_day_rows_are_compared_with_the_dated_ones() -> None:
    notes = site_notes(
        [
            result("latest listing", 950),
            result("latest listing, dated", 1000),
            result("latest listing 304", 850),
            result("latest listing 304, dated", 1000),
        ]
    )
    assert "0.95x 'latest listing, dated' (goal >= 0.9x: met)" in notes["latest listing"]
    assert "0.85x 'latest listing 304, dated' (goal >= 0.9x: MISSED)" in notes["latest listing 304"]


def test_scaling_report_compares_two_workers_with_one(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    rows = [
        result("bare route, 1 worker", 1000, workers=1),
        result("listing, 1 worker", 800, workers=1),
        result("listing 304, 1 worker", 900, workers=1),
        result("bare route, 2 workers", 1500, workers=2),
        result("listing, 2 workers", 1400, workers=2),
        result("listing 304, 2 workers", 1000, workers=2),
    ]
    out = tmp_path / "scaling.json"
    report_scaling({"results": rows, "day": "2026-03-03"}, [b"{}"], 8, 1.0, out)
    printed = capsys.readouterr().out
    assert "1.75x one worker; goal >= 1.6x: met" in printed
    data = json.loads(out.read_text())
    assert data["two_vs_one_worker"] == {"bare route": 1.5, "listing": 1.75, "listing 304": 1.111}


def test_percentiles() -> None:
    r = Result("r", "/", 1, 2.0, 100, [float(i) for i in range(1, 101)], Counter({200: 100}))
    assert r.rps == 50
    assert r.pct(0.5) == 50.5
    assert r.pct(0.99) == 100


def test_bare_server_serves_under_load_and_stops(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = Server(
        "bare",
        [sys.executable, "-m", "bench.web", "--serve-bare", "2048"],
        child_env(tmp_path),
        tmp_path / "bare.log",
    )
    try:
        server.wait_ready("/", timeout=60)
        n, secs, lats, statuses, size = asyncio.run(_httpx_load(server.url, ["/"], {}, 2, 0.3))
        assert n == len(lats) > 0 and secs >= 0.3
        assert statuses == Counter({200: n})
        assert size == 2048
    finally:
        server.stop()
    assert server.proc.poll() is not None


def test_bare_server_runs_several_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = Server(
        "bare",
        [sys.executable, "-m", "bench.web", "--serve-bare", "1500", "--workers", "2"],
        child_env(tmp_path),
        tmp_path / "bare.log",
    )
    try:
        server.wait_ready("/", timeout=60)
        n, _secs, _lats, statuses, size = asyncio.run(_httpx_load(server.url, ["/"], {}, 2, 0.3))
        assert statuses == Counter({200: n}) and size == 1500
    finally:
        server.stop()
    assert server.proc.poll() is not None
    assert "Started parent process" in (tmp_path / "bare.log").read_text()


def test_runs_ask_for_identity_unless_they_ask_for_gzip(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """httpx asks for gzip by default: the uncompressed runs must say identity, or both
    halves of the comparison would measure the same compressed pages."""
    import bench.web as web

    seen: list[dict[str, str]] = []

    async def fake_load(base, paths, headers, connections, duration):  # type: ignore[no-untyped-def]
        seen.append(headers)
        return 1, 1.0, [1.0], Counter({200: 1}), 10

    monkeypatch.setattr(web, "_httpx_load", fake_load)
    web.measure("plain", "http://x", ["/"], duration=0.1, connections=1, use_wrk=False)
    web.measure(
        "gz", "http://x", ["/"], duration=0.1, connections=1, use_wrk=False, headers=web.GZIP
    )
    assert [h["Accept-Encoding"] for h in seen] == ["identity", "gzip"]
