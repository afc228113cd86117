"""`papershelf up` stops within its bound: children that ignore SIGTERM are killed, and a
worker waiting out arXiv's Retry-After does not hold the stop. Real processes.

The bounds are correctness bounds, not benchmarks: the stop is meant to take at most
STOP_TIMEOUT (5 s); the assertions allow twice that for a loaded CI machine, and what they
catch is a stop that waits for a job's back-off or a long grace period (30 s and more).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.runtime.children import Child, stop_processes
from app.cli.runtime.redis_server import EmbeddedRedis
from app.cli.runtime.supervisor import STOP_TIMEOUT, Supervisor
from app.settings import Settings
from tests.fakes.arxiv_server import FakeArxiv, status

BOUND = 2 * STOP_TIMEOUT
# Ignores SIGTERM, says so on stdout, then sleeps far past any bound.
STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(600)"
)
POLITE = "import sys, time; print('ready', flush=True); time.sleep(600)"


def _start(code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_processes_kills_what_ignores_sigterm_at_the_deadline(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    procs += [_start(STUBBORN), _start(POLITE)]
    killed = stop_processes(procs, time.monotonic() + 1.0)
    assert killed == [procs[0].pid]
    assert procs[0].returncode == -signal.SIGKILL
    assert procs[1].returncode == -signal.SIGTERM


def test_the_supervisor_stops_stubborn_children_and_redis_within_its_bound(
    procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    supervisor = Supervisor(Settings(data_dir=tmp_path), "127.0.0.1", 0)
    supervisor.redis = EmbeddedRedis(tmp_path)
    supervisor.redis.start()
    procs += [_start(STUBBORN), _start(STUBBORN)]
    supervisor.children = [Child(f"stubborn {i}", [], process=p) for i, p in enumerate(procs)]
    started = time.monotonic()
    supervisor._stop_all()
    assert time.monotonic() - started < BOUND
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    assert supervisor.redis.process is not None and supervisor.redis.process.poll() is not None
    assert not supervisor.redis.socket.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    found.append(int(pid))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_ctrl_c_on_up_during_a_retry_back_off(tmp_path: Path) -> None:
    data_dir = tmp_path / f"up-{uuid.uuid4().hex[:8]}"
    with FakeArxiv() as fake:
        # Every feed request: come back in ten minutes. The fetch worker sits in its back-off.
        fake.inject(status(503, retry_after=600, times=1000))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
        env.update(
            PAPERSHELF_DATA_DIR=str(data_dir),
            PAPERSHELF_ARXIV_RSS_URL=fake.url,
            PAPERSHELF_ARXIV_API_URL=fake.api_url,
            PAPERSHELF_ARXIV_OAI_URL=fake.oai_url,
            PAPERSHELF_ARXIV_MIN_INTERVAL="0",
            PAPERSHELF_CATEGORIES="cs.CL",
        )
        port = free_port()
        up = subprocess.Popen([sys.executable, "-m", "app.cli", "up", "--port", str(port)], env=env)
        try:
            deadline = time.monotonic() + 90
            while not fake.requests_to("/rss") and time.monotonic() < deadline:
                assert up.poll() is None, "papershelf up exited early"
                time.sleep(0.1)
            assert fake.requests_to("/rss"), "the fetch worker never asked for the feed"
            up.send_signal(signal.SIGINT)
            try:
                code = up.wait(BOUND)
            except subprocess.TimeoutExpired:
                pytest.fail(f"papershelf up was still running {BOUND:.0f} s after Ctrl+C")
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()
    assert code == 0
    assert not _processes_with(str(data_dir)), "a child outlived papershelf up"
    assert not (data_dir / "run" / "redis.sock").exists()
