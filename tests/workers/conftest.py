"""Fixtures for the worker tests: a fake arXiv, a real Redis on loopback, unique keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from redis.asyncio import Redis

from tests.conftest import need
from tests.fakes.arxiv_server import FakeArxiv

REDIS_URL = os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def anyio_backend() -> str:
    # arq and redis.asyncio are asyncio-only.
    return "asyncio"


@pytest.fixture
def fake_arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv() as fake:
        yield fake


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        need(False, f"Redis not reachable at {REDIS_URL}: {exc.__class__.__name__}")
    return REDIS_URL


@pytest.fixture
def redis_key(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; whatever was written under it is deleted after."""
    key = f"papershelf-test:{uuid.uuid4().hex}"
    yield key
    with redis.Redis.from_url(redis_url) as client:
        found = list(client.scan_iter(match=f"*{key}*"))
        if found:
            client.delete(*found)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
