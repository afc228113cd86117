"""On-demand fetch: a paper page for ids the store lacks adds them to the shared pending set
on the real Redis (a queue of this test's own), queues the one drain job and answers 202
with a self-refreshing page, within per-client and site budgets; ids that cannot exist yet
are 404 with no look-up; without a reachable Redis it stays the 404 page and says why.
/readyz checks Redis too."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
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


def pending(queue: str) -> set[str]:
    with redis.Redis.from_url(REDIS_URL) as r:
        return {m.decode() for m in r.smembers(f"{queue}:ondemand:pending")}


def drain_job(generation: int = 0) -> tuple[str, tuple, str]:
    from app.jobs.queueing import scoped_job_id

    return ("fetch_ondemand", (), scoped_job_id(get_settings(), f"ondemand:{generation}"))


def test_unknown_id_joins_the_batch_and_the_page_refreshes(client: TestClient, queue: str) -> None:
    page = assert_html(client.get("/arxiv/2501.99999v2"), 202)
    assert "Fetching from arXiv…" in page and "2501.99999" in page
    assert '<meta http-equiv="refresh" content="5; url=/arxiv/2501.99999?wait=1">' in page
    assert queued(queue) == [drain_job()]
    assert pending(queue) == {"2501.99999"}
    # The refresh asks again: nothing new is queued, and it costs no budget.
    again = assert_html(client.get("/arxiv/2501.99999", params={"wait": "1"}), 202)
    assert "url=/arxiv/2501.99999?wait=2" in again
    assert queued(queue) == [drain_job()]
    with redis.Redis.from_url(REDIS_URL) as r:
        (used,) = [int(r.get(k) or 0) for k in r.scan_iter(match=f"{queue}:ondemand:client:*")]
    assert used == 1


def test_many_pages_share_one_job(client: TestClient, queue: str) -> None:
    for n in range(1, 21):
        assert_html(client.get(f"/arxiv/2501.{n:05d}"), 202)
    assert queued(queue) == [drain_job()]
    assert pending(queue) == {f"2501.{n:05d}" for n in range(1, 21)}


def test_partly_known_list_shows_what_it_has(client: TestClient, queue: str) -> None:
    page = assert_html(client.get("/arxiv/2603.00001,2501.88888,hep-th/9901001"))
    assert "Sparse attention for long documents" in page
    assert "Fetching from arXiv…: 2501.88888." in page
    assert 'http-equiv="refresh"' in page
    assert queued(queue) == [drain_job()] and pending(queue) == {"2501.88888"}
    # Known papers alone queue nothing.
    known = assert_html(client.get("/arxiv/2603.00001"))
    assert 'http-equiv="refresh"' not in known and "Fetching" not in known
    assert len(queued(queue)) == 1


def test_ids_that_cannot_exist_yet_are_404_without_a_look_up(
    client: TestClient, queue: str
) -> None:
    now = datetime.now(UTC)
    next_year = f"{(now.year + 1) % 100:02d}{now.month:02d}.00001"
    page = assert_html(client.get(f"/arxiv/{next_year}"), 404)
    assert "has not issued" in page and next_year in page
    assert 'http-equiv="refresh"' not in page
    # Month 13 is not an id at all.
    assert_html(client.get(f"/arxiv/{now.year % 100:02d}13.00001"), 400)
    # Beside a known paper the page shows it and says why the other is not fetched.
    both = assert_html(client.get(f"/arxiv/2603.00001,{next_year}"))
    assert "Sparse attention for long documents" in both and "has not issued" in both
    assert queued(queue) == [] and pending(queue) == set()


def test_over_budget_clients_get_no_job(site_settings: Callable[..., Settings], queue: str) -> None:
    gen = _client(
        site_settings,
        redis_url=REDIS_URL,
        fetch_queue=queue,
        ondemand_per_client_per_hour="2",
        ondemand_global_per_hour="3",
    )
    client = next(gen)
    try:
        # Two of three fit the client's budget; the page says the third is not fetched.
        page = assert_html(client.get("/arxiv/2501.00001,2501.00002,2501.00003"), 202)
        assert "Fetching from arXiv…: 2501.00001, 2501.00002." in page
        assert "2501.00003 (too many look-ups" in page and "try later" in page
        # Nothing left for this client: 429, nothing asked.
        r = client.get("/arxiv/2501.00004")
        over = assert_html(r, 429)
        assert "try later" in over and 0 < int(r.headers["Retry-After"]) <= 3600
        assert pending(queue) == {"2501.00001", "2501.00002"}
        # Another client has a budget of its own, until the site's is spent.
        other = TestClient(client.app, client=("203.0.113.7", 40000))
        assert_html(other.get("/arxiv/2501.00005"), 202)
        assert_html(other.get("/arxiv/2501.00006"), 429)
        assert pending(queue) == {"2501.00001", "2501.00002", "2501.00005"}
        assert queued(queue) == [drain_job()]
        # Asking again for what is pending costs nothing.
        assert_html(client.get("/arxiv/2501.00001"), 202)
    finally:
        gen.close()


def test_many_gets_make_one_upstream_query(
    site_settings: Callable[..., Settings], queue: str
) -> None:
    from tests.fakes.arxiv_server import FakeArxiv
    from tests.workers.test_fetch import paper, run_burst

    with FakeArxiv() as fake:
        fake.add_papers([paper(n) for n in range(1, 31)], announce=False)
        gen = _client(
            site_settings,
            redis_url=REDIS_URL,
            fetch_queue=queue,
            arxiv_api_url=fake.api_url,
            arxiv_min_interval="0",
            ondemand_delay="0.05",
        )
        client = next(gen)
        try:
            # 40 ids (30 arXiv knows, 10 it does not) from four clients, ten each.
            for c in range(4):
                visitor = TestClient(client.app, client=(f"198.51.100.{c + 1}", 40000))
                for n in range(c * 10 + 1, c * 10 + 11):
                    assert_html(visitor.get(f"/arxiv/2606.{n:05d}"), 202)
                    assert_html(visitor.get(f"/arxiv/2606.{n:05d}?wait=1"), 202)
            assert queued(queue) == [drain_job()]
            asyncio.run(run_burst(get_settings(), REDIS_URL))
            (query,) = fake.requests_to("/api")
            assert len((query.param("id_list") or "").split(",")) == 40
            assert "quokka7 " in assert_html(client.get("/arxiv/2606.00007"))
            unknown = assert_html(client.get("/arxiv/2606.00033"), 404)
            assert "arXiv has no paper with this id" in unknown
            # Remembered: asking again queues nothing and asks arXiv nothing.
            assert queued(queue) == []
            asyncio.run(run_burst(get_settings(), REDIS_URL))
            assert len(fake.requests_to("/api")) == 1
        finally:
            gen.close()


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
        assert "not yet fetched: 2501.99999" in page and "no Redis is configured" in page
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
