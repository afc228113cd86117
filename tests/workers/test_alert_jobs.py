"""Alerts end to end through the fetch pool: a fetched day from the fake arXiv, matched
against a saved search, POSTed signed to a real receiver on 127.0.0.1 that fails once with
500 (retried with the upstream policy), and recorded once, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from arq import Worker, create_pool
from arq.connections import ArqRedis
from sqlalchemy import Engine

from app import alerts
from app.jobs.connections import redis_settings
from app.jobs.queueing import scoped_job_id
from app.settings import Settings
from app.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, resolve_destination, verify
from tests.fakes.arxiv_server import FakeArxiv
from tests.workers.test_fetch import paper
from tests.workers.test_fetch import run_burst as fetch_burst
from workers import webhooks

pytestmark = pytest.mark.anyio
DAY = date(2026, 7, 1)


class Receiver:
    """A webhook receiver: answers the queued statuses in turn (then 200), keeps each POST."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.posts: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.posts.append((dict(self.headers.items()), body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                if status in (301, 302):
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver([500]) as r:
        yield r


@pytest.fixture
def settings(fake_arxiv: FakeArxiv, engine: Engine, tmp_path: Path) -> Settings:
    fake_arxiv.feed_day = DAY
    return fake_arxiv.settings(
        database_url=engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        categories=["cs.CL"],
        fetch_queue=f"papershelf-test:fetch:{uuid.uuid4().hex}",
        fetch_retry_delay=0.05,
        arxiv_max_backoff=0.01,  # the back-off's cap: retries come at once
        alerts_allow_private=True,  # the receiver is on loopback
    )


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()


async def run_burst(settings: Settings, redis_url: str) -> Worker:
    return await fetch_burst(settings, redis_url, keep_result=0)


def save_alert(engine: Engine, url: str, **kw: Any) -> tuple[alerts.AlertInfo, str]:
    spec = alerts.AlertSpec(name="quokka", query="quokka3 OR quokka9", webhook_url=url, **kw)
    with engine.begin() as conn:
        return alerts.create_alert(conn, alerts.validate(spec, allow_private=True))


async def fetch_day(pool: ArqRedis, settings: Settings, redis_url: str, tag: str) -> Worker:
    await pool.enqueue_job(
        "fetch_listing",
        "cs.CL",
        _job_id=scoped_job_id(settings, f"rss:cs.CL:{tag}"),
        _queue_name=settings.fetch_queue,
    )
    return await run_burst(settings, redis_url)


async def test_a_fetched_day_posts_its_matches_once_signed_after_a_500(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    engine: Engine,
    pool: ArqRedis,
    redis_url: str,
    receiver: Receiver,
) -> None:
    fake_arxiv.add_papers([paper(i) for i in range(1, 6)])
    fake_arxiv.add_papers([paper(9, cats=("cs.LG", "cs.CL"))])  # a cross-list into cs.CL
    info, secret = save_alert(engine, receiver.url)
    worker = await fetch_day(pool, settings, redis_url, "a")
    assert worker.jobs_failed == 0
    assert worker.jobs_complete == 3  # the listing, the matching, one delivery

    assert len(receiver.posts) == 2  # a 500, then the same POST again
    headers, body = receiver.posts[-1]
    assert receiver.posts[0][1] == body
    assert verify(secret, body, headers[SIGNATURE_HEADER])
    data = json.loads(body)
    assert int(headers[TIMESTAMP_HEADER]) > 0
    assert data["alert"]["id"] == info.id and data["category"] == "cs.CL"
    assert data["day"] == DAY.isoformat()
    assert sorted(p["arxiv_id"] for p in data["papers"]) == ["2606.00003", "2606.00009"]
    with engine.connect() as conn:
        [delivery] = alerts.list_deliveries(conn, info.id)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2

    # The day fetched again (a manual re-fetch, a restarted worker): nothing is sent again.
    await fetch_day(pool, settings, redis_url, "b")
    assert len(receiver.posts) == 2
    with engine.connect() as conn:
        assert len(alerts.list_deliveries(conn, info.id)) == 1


async def test_toggles_reach_the_delivery(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    engine: Engine,
    pool: ArqRedis,
    redis_url: str,
    receiver: Receiver,
) -> None:
    receiver.statuses.clear()
    fake_arxiv.add_papers([paper(3), paper(9, cats=("cs.LG", "cs.CL"))])
    save_alert(engine, receiver.url, include_crosslists=False)
    await fetch_day(pool, settings, redis_url, "c")
    [(_, body)] = receiver.posts
    assert [p["arxiv_id"] for p in json.loads(body)["papers"]] == ["2606.00003"]


async def test_a_refusing_receiver_fails_the_delivery_without_retries(
    receiver: Receiver, settings: Settings
) -> None:
    receiver.statuses[:] = [302]  # a redirect is never followed
    dest = resolve_destination(receiver.url, allow_private=True)
    async with webhooks.make_webhook_client(settings) as http:
        with pytest.raises(webhooks.DeliveryFailed, match="HTTP 302") as failed:
            await webhooks.post_signed(
                http, dest, b"{}", secret="s", sent_at=_now(), settings=settings
            )
    assert failed.value.attempts == 1 and len(receiver.posts) == 1


async def test_exhausted_retries_fail_after_the_upstream_attempts(
    receiver: Receiver, settings: Settings
) -> None:
    receiver.statuses[:] = [503] * 10
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    dest = resolve_destination(receiver.url, allow_private=True)
    async with webhooks.make_webhook_client(settings) as http:
        with pytest.raises(webhooks.DeliveryFailed, match="HTTP 503"):
            await webhooks.post_signed(
                http, dest, b"{}", secret="s", sent_at=_now(), settings=settings, sleep=sleep
            )
    assert len(receiver.posts) == settings.arxiv_max_attempts
    assert len(slept) == settings.arxiv_max_attempts - 1


async def test_the_guard_runs_again_at_delivery_time(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    engine: Engine,
    pool: ArqRedis,
    redis_url: str,
    receiver: Receiver,
) -> None:
    """Saved while private addresses were allowed, delivered after the admin turned that
    off: refused, recorded as failed, nothing sent."""
    fake_arxiv.add_papers([paper(3)])
    info, _ = save_alert(engine, receiver.url)
    strict = settings.model_copy(update={"alerts_allow_private": False})
    worker = await fetch_day(pool, strict, redis_url, "d")
    assert worker.jobs_failed == 0
    assert receiver.posts == []
    with engine.connect() as conn:
        [delivery] = alerts.list_deliveries(conn, info.id)
    assert delivery["status"] == "failed" and "loopback" in delivery["last_error"]


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_a_receiver_down_for_a_round_gets_the_delivery_from_the_retry(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    engine: Engine,
    pool: ArqRedis,
    redis_url: str,
    receiver: Receiver,
) -> None:
    from workers.fetch import retry_alert_deliveries

    receiver.statuses[:] = [503] * settings.arxiv_max_attempts  # every attempt of a round
    fake_arxiv.add_papers([paper(3)])
    info, secret = save_alert(engine, receiver.url)
    await fetch_day(pool, settings, redis_url, "e")
    with engine.connect() as conn:
        [failed] = alerts.list_deliveries(conn, info.id)
    assert failed["status"] == "failed" and failed["rounds"] == 1
    assert failed["retry_at"] is not None and failed["last_error"].startswith("HTTP 503")
    ctx = {"redis": pool, "settings": settings, "engine": engine}
    assert await retry_alert_deliveries(ctx) == {"queued": []}  # not due yet
    with engine.begin() as conn:  # ten minutes later
        conn.execute(alerts.deliveries.update().values(retry_at=_now()))
    assert await retry_alert_deliveries(ctx) == {"queued": [failed["id"]]}
    assert await retry_alert_deliveries(ctx) == {"queued": []}  # claimed once
    await run_burst(settings, redis_url)
    assert len(receiver.posts) == settings.arxiv_max_attempts + 1
    headers, body = receiver.posts[-1]
    assert verify(secret, body, headers[SIGNATURE_HEADER])
    assert [p["arxiv_id"] for p in json.loads(body)["papers"]] == ["2606.00003"]
    with engine.connect() as conn:
        [delivered] = alerts.list_deliveries(conn, info.id)
    assert delivered["status"] == "delivered" and delivered["retry_at"] is None
    assert delivered["attempts"] == settings.arxiv_max_attempts + 1


class _DeadRedis:
    async def enqueue_job(self, *args: object, **kwargs: object) -> None:
        raise ConnectionError("Redis went away")


async def test_deliveries_redis_would_not_take_stay_due(
    settings: Settings, engine: Engine, receiver: Receiver
) -> None:
    """Reopened, then the queue fails: the deliveries go back to failed and due, never left
    pending without a job."""
    from workers.fetch import retry_alert_deliveries

    info, _ = save_alert(engine, receiver.url)
    with engine.begin() as conn:
        conn.execute(
            alerts.deliveries.insert().values(
                alert_id=info.id,
                category="cs.CL",
                day=DAY,
                arxiv_ids=["2606.00003"],
                status="failed",
                attempts=5,
                rounds=1,
                created_at=_now(),
                retry_at=_now(),
            )
        )
    ctx = {"redis": _DeadRedis(), "settings": settings, "engine": engine}
    assert await retry_alert_deliveries(ctx) == {"queued": []}
    with engine.connect() as conn:
        [delivery] = alerts.list_deliveries(conn, info.id)
        assert delivery["status"] == "failed" and delivery["retry_at"] is not None
        assert delivery["rounds"] == 1  # no round was spent
    with engine.begin() as conn:
        assert alerts.claim_due_retries(conn) == [(delivery["id"], 1)]
