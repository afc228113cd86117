"""`papershelf serve` as a real process: its stderr carries one JSON access line per request,
and uvicorn believes X-Forwarded-For only from the proxies it is told to trust."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(tmp_path: Path, *options: str) -> Iterator[tuple[str, Path]]:
    """`papershelf serve` on a free port with a small rate limit; yields its URL and the
    file its stderr goes to."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env.update(
        PAPERSHELF_DATA_DIR=str(tmp_path / "data"),
        PAPERSHELF_RATE_LIMIT_PER_MINUTE="60",
        PAPERSHELF_RATE_LIMIT_BURST="2",
    )
    port = _free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *options],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def access_lines(log: Path) -> list[dict[str, object]]:
    lines = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if "route" in entry:
                lines.append(entry)
    return lines


def forwarded_statuses(url: str) -> list[int]:
    return [
        httpx.get(url + "/api/v1/stats", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(1, 4)
    ]


def test_serve_logs_json_and_ignores_forwarded_for_by_default(tmp_path: Path) -> None:
    with serving(tmp_path) as (url, log):
        # A loopback peer is not a proxy: three "clients" share its one bucket of 2.
        assert forwarded_statuses(url) == [200, 200, 429]
        assert httpx.get(url + "/api/v1/stats", headers={"Host": "evil.example"}).status_code == 400
        time.sleep(0.3)  # the last line reaches the file
    lines = access_lines(log)
    stats = [e for e in lines if e["path"] == "/api/v1/stats"]
    assert [e["status"] for e in stats] == [200, 200, 429, 400]
    assert {e["client"] for e in stats} == {"127.0.0.1"}
    assert all(e["request_id"] and e["method"] == "GET" for e in stats)
    # Ours replaces uvicorn's access line: one line per request.
    assert '"GET /api/v1/stats HTTP/1.1"' not in log.read_text()


def test_serve_trusts_the_proxies_it_is_given(tmp_path: Path) -> None:
    with serving(tmp_path, "--trusted-proxies", "127.0.0.1/32") as (url, log):
        assert forwarded_statuses(url) == [200, 200, 200]
        time.sleep(0.3)
    stats = [e for e in access_lines(log) if e["path"] == "/api/v1/stats"]
    assert [e["client"] for e in stats] == ["203.0.113.1", "203.0.113.2", "203.0.113.3"]


def test_serve_refuses_a_bad_proxy_entry(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env["PAPERSHELF_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--trusted-proxies", "10.0.0.0/8,nope"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "nope" in done.stderr and "Traceback" not in done.stderr
