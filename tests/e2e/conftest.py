"""A real server over the real 50k-paper sample, and Debian's Chromium driven by Playwright.

Needs: the `playwright` Python package (no `playwright install`: the browser is the system
Chromium at PAPERSHELF_CHROMIUM, default /usr/bin/chromium, from `apt-get install chromium`)
and ../shared/data. Missing pieces skip, or fail under PAPERSHELF_TEST_STRICT=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SAMPLE = "arxiv/papers_cs_2025-08-05_2026-07-01.jsonl.gz"
CHROMIUM = os.environ.get("PAPERSHELF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env["PAPERSHELF_DATA_DIR"] = str(data_dir)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def e2e_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the real sample imported, once per test session."""
    sample = shared_data / SAMPLE
    need(sample.is_file(), f"sample not found at {sample}")
    data_dir = tmp_path_factory.mktemp("e2e-store")
    subprocess.run(
        [sys.executable, "-m", "app.cli", "import", str(sample)],
        cwd=ROOT,
        env=_env(data_dir),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return data_dir


@contextmanager
def running(
    commands: list[list[str]],
    env: dict[str, str],
    log_path: Path,
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float = 60,
    stop_timeout: float = 40,
) -> Iterator[None]:
    """Start `papershelf …` processes, wait until `ready()` (a probe that may raise OSError)
    holds, and stop them afterwards; a process that dies or a timeout fails with its log."""
    log = log_path.open("w+")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", *argv],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for argv in commands
    ]
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    break
            except OSError:
                pass
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"{what} did not start:\n{log.read()[-3000:]}")
            time.sleep(0.2)
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def answers(url: str, containing: bytes = b"") -> Callable[[], bool]:
    """A readiness probe: `url` answers 2xx (with `containing` in its body)."""

    def probe() -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:
            return containing in response.read()

    return probe


REDIS_URL = os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextmanager
def redis_queue(pool: str) -> Iterator[str]:
    """A fresh queue name for a site's `pool` on the test Redis (skipped, or failed under
    PAPERSHELF_TEST_STRICT, when Redis is down); its keys are deleted afterwards."""
    import redis

    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError:
        need(False, f"Redis not reachable at {REDIS_URL}")
    queue = f"papershelf-test:{uuid.uuid4().hex}:{pool}"
    try:
        yield queue
    finally:
        with redis.Redis.from_url(REDIS_URL) as client:
            found = list(client.scan_iter(match=f"*{queue}*"))
            if found:
                client.delete(*found)


def page_errors(page: Any) -> list[str]:
    """A list that fills with the page's console errors (a CSP violation shows up there),
    script errors and failed requests (the browser's own favicon probe aside)."""
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    return errors


CARD = "article.paper[data-id]"


def card_ids(page: Any) -> list[str]:
    """The ids of the paper cards on the page, in order."""
    return [str(i) for i in page.locator(CARD).evaluate_all("els => els.map(e => e.dataset.id)")]


@contextmanager
def serving(data_dir: Path) -> Iterator[str]:
    """`papershelf serve` (no migration: the test built the store) over `data_dir` on a free
    port on 127.0.0.1; yields its base URL and stops it after."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with running(
        [["serve", "--port", str(port), "--no-migrate"]],
        _env(data_dir),
        data_dir / "server.log",
        answers(base + "/static/papershelf.css"),
        what="the server",
        stop_timeout=10,
    ):
        yield base


@pytest.fixture(scope="session")
def base_url(e2e_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`papershelf serve` on a free port on 127.0.0.1, stopped after the session."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        [["serve", "--port", str(port)]],
        _env(e2e_store),
        tmp_path_factory.mktemp("e2e-server") / "server.log",
        answers(url + "/static/papershelf.css"),
        what="the server",
        stop_timeout=10,
    ):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an asyncio loop running in this thread
    while it lives, which would break the asyncio tests that run after these."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the playwright package is not installed (pip install playwright)")
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    need(
        bool(path) and os.access(str(path), os.X_OK),
        f"Chromium not found at {CHROMIUM} (apt-get install chromium)",
    )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
