"""On-demand fetch: a paper page for ids the store lacks queues a `fetch_ids` job on the real
Redis (a queue of this test's own) and answers 202 with a self-refreshing page; without a
reachable Redis it stays the 404 page and says why. /readyz checks Redis too."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from app.db.engine import make_engine
from app.settings import Settings, get_settings
from tests.app.web.test_pages import assert_html, make_client
from tests.conftest import need

REDIS_URL = os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


@pytest.fixture
def queue() -> Iterator[str]:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as r:
            r.ping()
    except redis.RedisError as exc:
        need(False, f"Redis not reachable at {REDIS_URL}: {exc.__class__.__name__}")
    name = f"papershelf-test:{uuid.uuid4().hex}"
    yield name
    with redis.Redis.from_url(REDIS_URL) as r:
        found = list(r.scan_iter(match=f"*{name}*"))
        if found:
            r.delete(*found)


def _client(site_settings: Callable[..., Settings], **env: str) -> Iterator[TestClient]:
    yield from make_client(lambda: site_settings(**{k.upper(): v for k, v in env.items()}))


@pytest.fixture
def client(site_settings: Callable[..., Settings], queue: str) -> Iterator[TestClient]:
    yield from _client(site_settings, redis_url=REDIS_URL, fetch_queue=queue)


def queued(queue: str) -> list[tuple[str, tuple, str | None]]:
    import asyncio

    from arq import create_pool

    from app.jobs.connections import redis_settings

    async def read() -> list[tuple[str, tuple, str | None]]:
        pool = await create_pool(redis_settings(REDIS_URL))
        try:
            jobs = await pool.queued_jobs(queue_name=queue)
            return [(j.function, tuple(j.args), j.job_id) for j in jobs]
        finally:
            await pool.aclose()

    return asyncio.run(read())


def test_unknown_id_is_queued_and_the_page_refreshes(client: TestClient, queue: str) -> None:
    from app.jobs.fetch import ids_job_id
    from app.jobs.queueing import scoped_job_id

    page = assert_html(client.get("/arxiv/2501.99999v2"), 202)
    assert "Fetching from arXiv…" in page and "2501.99999" in page
    assert '<meta http-equiv="refresh" content="5; url=/arxiv/2501.99999?wait=1">' in page
    job_id = scoped_job_id(get_settings(), ids_job_id(["2501.99999"]))
    assert queued(queue) == [("fetch_ids", (["2501.99999"],), job_id)]
    # The refresh asks again; the job id collapses the repeat.
    again = assert_html(client.get("/arxiv/2501.99999", params={"wait": "1"}), 202)
    assert "url=/arxiv/2501.99999?wait=2" in again
    with redis.Redis.from_url(REDIS_URL) as r:
        assert r.zcard(queue) == 1


def test_partly_known_list_shows_what_it_has(client: TestClient, queue: str) -> None:
    page = assert_html(client.get("/arxiv/2603.00001,2501.88888,hep-th/9901001"))
    assert "Sparse attention for long documents" in page
    assert "Fetching from arXiv…: 2501.88888." in page
    assert 'http-equiv="refresh"' in page
    assert [(f, a) for f, a, _ in queued(queue)] == [("fetch_ids", (["2501.88888"],))]
    # Known papers alone queue nothing.
    known = assert_html(client.get("/arxiv/2603.00001"))
    assert 'http-equiv="refresh"' not in known and "Fetching" not in known
    assert len(queued(queue)) == 1


def test_refreshing_stops_after_a_while(client: TestClient, queue: str) -> None:
    from app.web.pages.papers import FETCH_MAX_WAITS

    r = client.get("/arxiv/2501.99999", params={"wait": str(FETCH_MAX_WAITS)})
    page = assert_html(r, 404)
    assert "not yet fetched" in page and "may not exist" in page
    assert 'http-equiv="refresh"' not in page
    assert queued(queue) == []


def test_without_redis_the_page_says_why(site_settings: Callable[..., Settings]) -> None:
    gen = _client(site_settings)
    client = next(gen)
    try:
        page = assert_html(client.get("/arxiv/2501.99999"), 404)
        assert "not yet fetched from arXiv" in page and "no Redis is configured" in page
        partial = assert_html(client.get("/arxiv/2603.00001,2501.99999"))
        assert "not yet fetched: 2501.99999" in partial and "no Redis is configured" in partial
        assert client.get("/readyz").json() == {"status": "ready", "database": "ok"}
    finally:
        gen.close()


def test_unreachable_redis_is_a_quick_404(
    site_settings: Callable[..., Settings], queue: str
) -> None:
    gen = _client(site_settings, redis_url=DEAD_REDIS, fetch_queue=queue)
    client = next(gen)
    try:
        started = time.monotonic()
        page = assert_html(client.get("/arxiv/2501.99999"), 404)
        assert "unreachable" in page and "127.0.0.1:1" in page
        ready = client.get("/readyz")
        assert time.monotonic() - started < 10
        assert ready.status_code == 503
        body = ready.json()
        assert body["error"]["code"] == "not_ready" and body["error"]["failing"] == ["redis"]
        assert body["database"] == "ok" and body["redis"] == "unavailable"
    finally:
        gen.close()


def test_readyz_checks_database_and_redis(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "database": "ok", "redis": "ok"}
    app = client.app
    engine = app.state.engine  # type: ignore[attr-defined]
    broken = make_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    app.state.engine = broken  # type: ignore[attr-defined]
    try:
        r = client.get("/readyz")
    finally:
        app.state.engine = engine  # type: ignore[attr-defined]
        broken.dispose()
    assert r.status_code == 503
    body = r.json()
    assert body["error"]["failing"] == ["database"] and "database:" in body["error"]["message"]
    assert body["redis"] == "ok"
