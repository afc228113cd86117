"""bench/web.py's own parts: the baseline app, the load loop and the server lifecycle."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

from fastapi.testclient import TestClient

from bench.web import Result, Server, _httpx_load, child_env, make_bare_app


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
