"""Workers as real processes: killed mid-harvest, Redis restarted under them, cron on two
workers, and `papershelf up` end to end. Slower than the rest (each waits on real timers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from arq import Worker, create_pool, cron
from sqlalchemy import Engine, func, select

from app.cli.runtime.redis_server import find_server_binary
from app.db import runs
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.db.models import Paper, PaperCategory, PaperVersion
from app.jobs.connections import redis_settings
from app.jobs.fetch import harvest_key
from app.schedule import latest_listing_day, parse_holidays
from app.settings import Settings
from tests.fakes.arxiv_server import FakeArxiv
from tests.workers.test_fetch import paper, snapshot
from workers import fetch

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "app.cli"]


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(fake: FakeArxiv, db_url: str, redis_url: str, tmp: Path, **extra: str) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env.update(
        PAPERSHELF_DATA_DIR=str(tmp / "data"),
        PAPERSHELF_DATABASE_URL=db_url,
        PAPERSHELF_REDIS_URL=redis_url,
        PAPERSHELF_ARXIV_RSS_URL=fake.url,
        PAPERSHELF_ARXIV_API_URL=fake.api_url,
        PAPERSHELF_ARXIV_OAI_URL=fake.oai_url,
        PAPERSHELF_ARXIV_MIN_INTERVAL="0",
        PAPERSHELF_CATEGORIES="cs.CL",
        PAPERSHELF_FETCH_QUEUE=f"papershelf-test:fetch:{uuid.uuid4().hex}",
    )
    env.update(extra)
    return env


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, "worker", "--pool", "fetch"], env=env)


def enqueue(redis_url: str, queue: str, fn: str, *args: Any, job_id: str) -> None:
    async def go() -> None:
        pool = await create_pool(redis_settings(redis_url))
        try:
            await pool.enqueue_job(fn, *args, _job_id=job_id, _queue_name=queue)
        finally:
            await pool.aclose()

    asyncio.run(go())


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def harvested(engine: Engine, key: str) -> int:
    with engine.connect() as conn:
        state = runs.get_harvest(conn, key)
    return state.harvested if state else 0


def test_worker_killed_mid_backfill_resumes_to_the_same_store(
    fake_arxiv: FakeArxiv, redis_url: str, tmp_path: Path
) -> None:
    fake_arxiv.add_papers([paper(i, versions=1 + i % 3) for i in range(1, 15)], announce=False)
    fake_arxiv.oai_page_size = 2
    args = ("cs", "2026-01-01", "2026-12-31")
    key = harvest_key(*args)

    # The reference: the same harvest, uninterrupted, in this process.
    ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    upgrade(ref_url)
    ref_engine = make_engine(ref_url)
    ref_settings = fake_arxiv.settings(database_url=ref_url, fetch_pages_per_job=100)

    async def reference() -> None:
        pool = await create_pool(redis_settings(redis_url))
        ctx: dict[str, Any] = {"redis": pool, "settings": ref_settings, "job_try": 1}
        await fetch.startup(ctx)
        try:
            await fetch.backfill(ctx, *args)
        finally:
            await fetch.shutdown(ctx)
            await pool.aclose()

    asyncio.run(reference())
    assert harvested(ref_engine, key) == 14

    url = f"sqlite:///{tmp_path / 'killed.db'}"
    upgrade(url)
    engine = make_engine(url)
    env = worker_env(
        fake_arxiv,
        url,
        redis_url,
        tmp_path,
        PAPERSHELF_FETCH_JOB_TIMEOUT="5",
        PAPERSHELF_FETCH_PAGES_PER_JOB="3",
        PAPERSHELF_ARXIV_LEASE_TTL="2",  # the dead worker's connection lease frees quickly
    )
    fake_arxiv.latency = 0.25  # pages arrive slowly enough to kill between them
    # arq job ids are global across queues: make this run's unique.
    job_id = f"{key}:{uuid.uuid4().hex}"
    enqueue(redis_url, env["PAPERSHELF_FETCH_QUEUE"], "backfill", *args, job_id=job_id)
    worker = start_worker(env)
    try:
        wait_for(lambda: harvested(engine, key) >= 4, 30, "the harvest to get going")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        got = harvested(engine, key)
        assert 4 <= got < 14
        # A new worker picks the job up once the dead one's claim expires (timeout + 10 s).
        worker = start_worker(env)
        try:
            wait_for(lambda: harvested(engine, key) >= 14, 60, "the harvest to finish")
        except AssertionError:
            for r in fake_arxiv.requests_to("/oai")[-8:]:
                print(r.started, r.finished, r.query, r.status)
            raise
        with engine.connect() as conn:
            state = runs.get_harvest(conn, key)
        assert state is not None and state.done
    finally:
        stop(worker)
    assert snapshot(engine) == snapshot(ref_engine)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Paper)) == 14
        assert conn.scalar(select(func.count()).select_from(PaperVersion)) == sum(
            1 + i % 3 for i in range(1, 15)
        )
        assert conn.scalar(select(func.count()).select_from(PaperCategory)) == 28
        # The killed attempt's run record is closed, and the records count every paper once.
        records = runs.recent_runs(conn, limit=100)
    assert [r for r in records if r["status"] == "running"] == []
    assert any(r["error"] == runs.ABANDONED for r in records)
    assert sum(r["inserted"] for r in records) == 14


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A Redis of this test's own that keeps its data across a restart (append-only file)."""
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    cmd = [
        find_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--dir",
        str(data),
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL)]
    url = f"redis://127.0.0.1:{port}/0"

    def ping() -> bool:
        try:
            return bool(redis.Redis.from_url(url).ping())
        except redis.RedisError:
            return False

    def restart() -> None:
        procs[-1].terminate()
        procs[-1].wait(10)
        time.sleep(1.0)  # the worker sees a real outage
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        wait_for(ping, 10, "Redis to come back")

    wait_for(ping, 10, "Redis to start")
    yield url, restart
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(10)


def test_redis_restart_under_a_running_worker(
    fake_arxiv: FakeArxiv, private_redis: tuple[str, Callable[[], None]], tmp_path: Path
) -> None:
    redis_url, restart = private_redis
    fake_arxiv.add_papers([paper(i) for i in range(1, 4)], announce=False)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    env = worker_env(fake_arxiv, url, redis_url, tmp_path)
    queue = env["PAPERSHELF_FETCH_QUEUE"]

    def stored() -> int:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Paper)) or 0

    worker = start_worker(env)
    try:
        run = uuid.uuid4().hex
        enqueue(redis_url, queue, "fetch_ids", ["2606.00001"], job_id=f"ids:1:{run}")
        wait_for(lambda: stored() == 1, 30, "the first job")
        restart()
        enqueue(redis_url, queue, "fetch_ids", ["2606.00002"], job_id=f"ids:2:{run}")
        enqueue(redis_url, queue, "fetch_ids", ["2606.00003"], job_id=f"ids:3:{run}")
        wait_for(lambda: stored() == 3, 60, "the jobs queued after the restart")
        assert worker.poll() is None, "the worker died with Redis"
    finally:
        stop(worker)


def test_the_same_cron_job_on_two_workers_runs_once(redis_url: str) -> None:
    key = f"papershelf-test:cron:{uuid.uuid4().hex}"
    queue = f"{key}:queue"

    async def tick(ctx: dict[str, Any]) -> None:
        await ctx["redis"].hincrby(key, ctx["job_id"], 1)

    async def go() -> dict[bytes, bytes]:
        workers = [
            Worker(
                functions=[],
                cron_jobs=[cron(tick, second=set(range(60)))],
                queue_name=queue,
                redis_settings=redis_settings(redis_url),
                handle_signals=False,
                poll_delay=0.05,
                keep_result=1,
            )
            for _ in range(2)
        ]
        tasks = [asyncio.create_task(w.main()) for w in workers]
        await asyncio.sleep(3.5)
        for w in workers:
            # arq's close() cancels a tick still running and re-raises its CancelledError;
            # that tick is simply not counted.
            with contextlib.suppress(asyncio.CancelledError):
                await w.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await client.hgetall(key)
        finally:
            await client.delete(key)
            await client.aclose()

    ran = asyncio.run(go())
    assert len(ran) >= 2  # several ticks happened …
    assert set(ran.values()) == {b"1"}  # … and each ran exactly once
    # The fetch pool's own cron jobs are unique in the same way.
    assert all(job.unique for job in fetch.CRON_JOBS)


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ:
            found.append(int(pid))
    return found


def test_papershelf_up_end_to_end(fake_arxiv: FakeArxiv, tmp_path: Path) -> None:
    holidays = parse_holidays(Settings().arxiv_holidays)
    fake_arxiv.feed_day = latest_listing_day(datetime.now(UTC), holidays)
    fake_arxiv.add_papers([paper(i) for i in range(1, 6)])
    port = free_port()
    data_dir = tmp_path / f"up-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env.update(
        PAPERSHELF_DATA_DIR=str(data_dir),
        PAPERSHELF_ARXIV_RSS_URL=fake_arxiv.url,
        PAPERSHELF_ARXIV_API_URL=fake_arxiv.api_url,
        PAPERSHELF_ARXIV_OAI_URL=fake_arxiv.oai_url,
        PAPERSHELF_ARXIV_MIN_INTERVAL="0",
        PAPERSHELF_CATEGORIES="cs.CL",
    )
    up = subprocess.Popen([*CLI, "up", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"

    def found() -> bool:
        try:
            r = httpx.get(f"{base}/api/v1/search", params={"q": "quokka3"}, timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and [h["arxiv_id"] for h in r.json()["hits"]] == ["2606.00003"]

    try:
        wait_for(found, 90, "the first day's list to be fetched and searchable")
        page = httpx.get(f"{base}/", timeout=5).text
        assert "5 papers" in page
        assert _processes_with(str(data_dir)), "children should carry the data dir"
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert code == 0
    wait_for(lambda: not _processes_with(str(data_dir)), 10, "every child to exit")
    assert not (data_dir / "run" / "redis.sock").exists()
