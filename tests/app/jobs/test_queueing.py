"""Queueing from outside a worker (app.jobs.queueing, app.jobs.alerts.requeue) on a real
Redis: several jobs over one connection, repeats collapsing, and a missing or dead Redis
turned into QueueUnavailable with nothing lost."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

import pytest
from arq import create_pool

from app.jobs import alerts as alert_jobs
from app.jobs import connections
from app.jobs.connections import QueueUnavailable
from app.jobs.queueing import JobRequest, enqueue, open_queue
from app.settings import Settings

REDIS_URL = os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def settings() -> Settings:
    return Settings(redis_url=REDIS_URL, fetch_queue=f"papershelf-test:fetch:{uuid.uuid4().hex}")


async def queued_ids(settings: Settings) -> list[str]:
    pool = await create_pool(connections.redis_settings(REDIS_URL))
    try:
        ids = await pool.zrange(settings.fetch_queue, 0, -1)
        await pool.delete(settings.fetch_queue, *(f"arq:job:{i.decode()}" for i in ids))
        return sorted(i.decode() for i in ids)
    finally:
        await pool.aclose()


def count_pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    opened: list[int] = []
    real = connections.create_pool

    async def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(connections, "create_pool", counting)
    return opened


def test_several_jobs_share_one_connection_and_repeats_collapse(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = count_pools(monkeypatch)

    async def go() -> list[bool]:
        async with open_queue(settings) as send:
            return [
                await send(JobRequest("job", (1,), "a")),
                await send(JobRequest("job", (2,), "b")),
                await send(JobRequest("job", (1,), "a")),  # already queued
            ]

    assert asyncio.run(go()) == [True, True, False]
    assert len(opened) == 1
    queue = settings.fetch_queue
    assert asyncio.run(queued_ids(settings)) == [f"{queue}:a", f"{queue}:b"]


def test_requeue_sends_every_reopened_delivery_over_one_connection(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = count_pools(monkeypatch)
    reopened = [(11, 1), (12, 3), (13, 0)]
    assert asyncio.run(alert_jobs.requeue(settings, reopened, quick=True)) == ([11, 12, 13], [])
    assert len(opened) == 1
    queue = settings.fetch_queue
    assert asyncio.run(queued_ids(settings)) == [
        f"{queue}:alerts:delivery:11:r1",
        f"{queue}:alerts:delivery:12:r3",
        f"{queue}:alerts:delivery:13",
    ]


def dead_redis_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize("redis_url", [None, "dead"])
def test_without_redis_nothing_is_queued_and_everything_is_left_over(
    redis_url: str | None,
) -> None:
    settings = Settings(redis_url=dead_redis_url() if redis_url == "dead" else None)
    with pytest.raises(QueueUnavailable):
        asyncio.run(enqueue(settings, JobRequest("job", (), "x"), quick=True))
    reopened = [(1, 1), (2, 1)]
    assert asyncio.run(alert_jobs.requeue(settings, reopened, quick=True)) == ([], [1, 2])
