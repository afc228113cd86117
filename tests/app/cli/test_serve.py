"""`papershelf serve` as a real process: its stderr carries one JSON access line per request,
uvicorn believes X-Forwarded-For only from the proxies it is told to trust, and `--workers N`
runs N processes that each answer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
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
def serving(
    tmp_path: Path, *options: str, **extra_env: str
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """`papershelf serve` on a free port with a small rate limit; yields its URL, the file its
    stderr goes to and the process. It runs in a process group of its own, so whatever it
    started (uvicorn's workers) is stopped with it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env.update(
        PAPERSHELF_DATA_DIR=str(tmp_path / "data"),
        PAPERSHELF_RATE_LIMIT_PER_MINUTE="60",
        PAPERSHELF_RATE_LIMIT_BURST="2",
    )
    env.update(extra_env)
    port = _free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *options],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
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
        yield url, log, proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Anything of its group still there (a worker it failed to stop).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


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
    with serving(tmp_path) as (url, log, _proc):
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
    with serving(tmp_path, "--trusted-proxies", "127.0.0.1/32") as (url, log, _proc):
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


def serve_workers(pid: int) -> list[int]:
    """The processes a `papershelf serve` (pid) started to answer requests: uvicorn's workers,
    its children started through multiprocessing's spawn (not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
        if parent == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


@contextmanager
def answering_alone(worker: int, workers: Iterable[int]) -> Iterator[None]:
    """Only `worker` of a `serve --workers N` can take a new connection meanwhile: the others
    are stopped (SIGSTOP) and continued after. uvicorn's parent replaces a worker that misses
    its 5 s health ping, so the block must stay short."""
    others = [w for w in workers if w != worker]
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited, not yet reaped by whoever inherited it


def test_serve_with_two_workers_runs_two_processes_that_each_answer(tmp_path: Path) -> None:
    with serving(tmp_path, "--workers", "2") as (url, log, proc):
        deadline = time.monotonic() + 30
        while len(workers := serve_workers(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2, f"expected 2 worker processes, found {workers}"
        assert proc.pid not in workers
        for worker in workers:
            # Each request opens a new connection, which only the running worker can accept.
            with answering_alone(worker, workers):
                statuses = [httpx.get(url + "/healthz", timeout=3).status_code for _ in "ab"]
                page = httpx.get(url + "/", timeout=3)
            assert statuses == [200, 200], f"worker {worker} alone answered {statuses}"
            assert page.status_code == 200 and "Papershelf" in page.text
        # Neither was replaced while it was stopped: these were the same two processes.
        assert serve_workers(proc.pid) == workers
        started = log.read_text()
        assert all(f"Started server process [{w}]" in started for w in workers)
    # Stopping serve stops its workers.
    deadline = time.monotonic() + 10
    while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(w) for w in workers), "a worker outlived serve"


def _requests_counted(metrics: str, route: str) -> float:
    prefix = "papershelf_http_requests_total{"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(prefix) and f'route="{route}"' in line and 'status="200"' in line
    )


def test_metrics_under_two_workers_count_every_process(tmp_path: Path) -> None:
    """A scrape reaches one process; its figures must cover both, or a dashboard would see
    half the traffic, jumping with whichever worker answered."""
    token = "metrics-token"
    with serving(tmp_path, "--workers", "2", PAPERSHELF_ADMIN_TOKEN=token) as (url, _log, proc):
        deadline = time.monotonic() + 30
        while len(workers := serve_workers(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2
        for worker in workers:
            with answering_alone(worker, workers):
                assert httpx.get(url + "/", timeout=3).status_code == 200
        auth = {"Authorization": f"Bearer {token}"}
        # A process counts a request just after answering it: let both finish counting.
        time.sleep(0.5)
        for worker in workers:  # whichever process answers the scrape
            with answering_alone(worker, workers):
                scrape = httpx.get(url + "/metrics", headers=auth, timeout=3)
            assert scrape.status_code == 200
            assert _requests_counted(scrape.text, "/") == 2, scrape.text[:2000]
