"""POST /api/v1/admin/fetch: re-fetch a category's list or ids through the fetch pool."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from arq import create_pool
from fastapi.testclient import TestClient

from app.jobs.connections import redis_settings
from app.settings import Settings

REDIS_URL = os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "s3cret-admin-token"


def make(site_settings: Callable[..., Settings], **env: str) -> Iterator[TestClient]:
    site_settings(**env)
    from app.main import create_app

    app = create_app()  # this test's settings: its own rate limits and caches

    with TestClient(app) as client:
        yield client


@pytest.fixture
def queue() -> str:
    return f"papershelf-test:fetch:{uuid.uuid4().hex}"


@pytest.fixture
def client(site_settings: Callable[..., Settings], queue: str) -> Iterator[TestClient]:
    yield from make(site_settings, ADMIN_TOKEN=TOKEN, REDIS_URL=REDIS_URL, FETCH_QUEUE=queue)


def queued(queue: str) -> int:
    async def go() -> int:
        pool = await create_pool(redis_settings(REDIS_URL))
        try:
            return int(await pool.zcard(queue))
        finally:
            await pool.delete(queue)
            await pool.aclose()

    return asyncio.run(go())


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_queues_a_category_once_and_ids(client: TestClient, queue: str) -> None:
    first = client.post("/api/v1/admin/fetch", json={"category": "cs.cl"}, headers=AUTH)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "queued" and first.json()["job"] == "fetch_listing"
    again = client.post("/api/v1/admin/fetch", json={"category": "cs.CL"}, headers=AUTH)
    assert again.json()["status"] == "already-queued"
    ids = client.post("/api/v1/admin/fetch", json={"ids": ["arXiv:2401.00001v2"]}, headers=AUTH)
    assert ids.status_code == 202 and ids.json()["job"] == "fetch_ids"
    assert queued(queue) == 2


def test_bad_requests_are_4xx(client: TestClient) -> None:
    post = client.post
    assert post("/api/v1/admin/fetch", json={"category": "cs.CL"}).status_code == 401
    assert (
        post("/api/v1/admin/fetch", json={"category": "cs.NOPE"}, headers=AUTH).status_code == 400
    )
    assert post("/api/v1/admin/fetch", json={"ids": ["abc"]}, headers=AUTH).status_code == 400
    both = post(
        "/api/v1/admin/fetch", json={"ids": ["2401.00001"], "category": "cs.CL"}, headers=AUTH
    )
    assert both.status_code == 400
    assert both.json()["error"]["code"] == "bad_request"


def test_without_redis_it_says_so(site_settings: Callable[..., Settings]) -> None:
    for client in make(site_settings, ADMIN_TOKEN=TOKEN):
        r = client.post("/api/v1/admin/fetch", json={"category": "cs.CL"}, headers=AUTH)
        assert r.status_code == 503
        assert "Redis" in r.json()["error"]["message"]
