"""A worker told to stop while a job waits out arXiv's Retry-After: it exits promptly, the
job goes back on the queue whole, and the store holds only whole pages. Real processes."""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from arq.constants import in_progress_key_prefix
from sqlalchemy import func, select

from app.db import runs
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.db.models import Paper
from app.jobs.fetch import harvest_key
from tests.fakes.arxiv_server import FakeArxiv, delay, status
from tests.workers.test_fetch import paper
from tests.workers.test_processes import (
    enqueue,
    harvested,
    start_worker,
    stop,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.slow

# A correctness bound, not a benchmark: the worker must not sit out the 600 s Retry-After
# (nor a long grace period); generous so that a loaded CI machine passes.
STOP_BOUND_S = 10


def test_sigterm_during_a_back_off_requeues_the_job_and_keeps_whole_pages(
    fake_arxiv: FakeArxiv, redis_url: str, tmp_path: Path
) -> None:
    fake_arxiv.add_papers([paper(i) for i in range(1, 7)], announce=False)
    fake_arxiv.oai_page_size = 2
    # The first page is served; then arXiv asks us to come back in ten minutes.
    fake_arxiv.inject(delay(0, path="/oai"), status(503, retry_after=600, path="/oai", times=1000))
    args = ("cs", "2026-01-01", "2026-12-31")
    key = harvest_key(*args)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    env = worker_env(fake_arxiv, url, redis_url, tmp_path, PAPERSHELF_FETCH_PAGES_PER_JOB="100")
    queue = env["PAPERSHELF_FETCH_QUEUE"]
    job_id = f"{key}:{uuid.uuid4().hex}"  # arq job ids are global across queues
    enqueue(redis_url, queue, "backfill", *args, job_id=job_id)

    def stored() -> int:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Paper)) or 0

    worker = start_worker(env)
    try:
        wait_for(lambda: len(fake_arxiv.requests_to("/oai")) >= 2, 30, "the 503 answer")
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(STOP_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker was still running {STOP_BOUND_S} s after SIGTERM")
        assert code == 0
    finally:
        stop(worker)

    # Cut short, not failed: the job is still queued and no longer claimed.
    with redis.Redis.from_url(redis_url) as client:
        assert client.zscore(queue, job_id) is not None
        assert not client.exists(in_progress_key_prefix + job_id)
    # Only the committed first page, with the token that follows it.
    assert stored() == 2
    assert harvested(engine, key) == 2

    fake_arxiv.reset()  # arXiv is back
    worker = start_worker(env)
    try:
        wait_for(lambda: harvested(engine, key) >= 6, 60, "the re-queued job to finish")
    finally:
        stop(worker)
    with engine.connect() as conn:
        state = runs.get_harvest(conn, key)
    assert state is not None and state.done
    assert stored() == 6
    with redis.Redis.from_url(redis_url) as client:
        assert client.zscore(queue, job_id) is None
