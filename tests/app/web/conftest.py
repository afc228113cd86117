"""Fixtures the web tests share: a queue name of their own in the test Redis and the fake
LLM (the FAQ tests), a clock the page caches' tests move by hand."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.app.web.test_faq_api import REDIS_URL
from tests.fakes.clock import Clock
from tests.fakes.llm_server import FakeLLM


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"papershelf-test:{uuid.uuid4().hex}:llm"
    yield name
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            found = list(client.scan_iter(match=f"*{name}*"))
            if found:
                client.delete(*found)
    except redis.RedisError:
        pass


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM(chunk_chars=7) as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()
