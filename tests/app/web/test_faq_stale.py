"""The FAQ of a paper that has a new version: the older version's answer is shown and marked
stale on the page and in the API (SQLite and PostgreSQL) until the new one is written, and
the page's control (the no-JavaScript form, or the API's POST) has it written."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.artifacts import faqs
from app.artifacts.faqs import FaqKey, Lang
from app.db.engine import make_engine
from app.settings import Settings, get_settings
from tests.app.web.test_faq_api import ID, assert_error, make_app, seed
from tests.conftest import need
from tests.fakes.llm_server import DEFAULT_REPLY, FakeLLM
from tests.workers.test_llm import run_burst

REDIS_URL = os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BASE = f"/api/v1/papers/{ID}/faq"
OLD = "## 1. What problem does this paper try to solve?\nThe **v1** answer <b>bold</b>."
NOTICE = "Written for v1; this paper is now v3."


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("pg_url")}


def _redis_up() -> bool:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def save(settings: Settings, version: int, content: str, lang: Lang = "en") -> None:
    engine = make_engine(settings.database_url_resolved)
    with engine.begin() as conn:
        faqs.save_faq(
            conn,
            FaqKey(ID, version, lang, "fake-model-1"),
            content,
            prompt_hash="p",
            finish_reason="stop",
            now=datetime(2026, 5, 4, tzinfo=UTC),
        )
    engine.dispose()


@pytest.fixture
def client_for(
    site_settings: Callable[..., Settings],
    fake_llm: FakeLLM,
    queue: str,
    database_env: dict[str, str],
) -> Iterator[Callable[..., TestClient]]:
    """A client for the site where paper ID had an English answer for v1 and is now v3."""
    clients: list[TestClient] = []

    def go(*, llm: bool = True, with_redis: bool = True) -> TestClient:
        env = dict(database_env)
        if with_redis:
            need(_redis_up(), f"Redis not reachable at {REDIS_URL}")
            env["REDIS_URL"] = REDIS_URL
        if llm:
            env["LLM_BASE_URL"] = fake_llm.base_url
        settings = site_settings(LLM_QUEUE=queue, LLM_MODEL="fake-model-1", **env)
        seed(settings.database_url_resolved, version=1)
        save(settings, 1, OLD)
        seed(settings.database_url_resolved, version=3)
        client = TestClient(make_app(), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield go
    for c in clients:
        c.__exit__(None, None, None)


def assert_stale(body: dict[str, Any], status: str) -> None:
    assert body["stale"] is True and body["status"] == status, body
    assert (body["version"], body["paper_version"]) == (1, 3)
    assert body["content"] == OLD and body["model"] == "fake-model-1"
    assert body["stream_url"] == f"{BASE}/stream?lang=en"


def test_the_older_answer_is_shown_marked_stale(client_for: Callable[..., TestClient]) -> None:
    client = client_for()
    r = client.get(BASE)
    assert r.status_code == 200, r.text
    assert_stale(r.json(), "stale")
    # Per language: no Chinese answer was ever written.
    assert_error(client.get(BASE, params={"lang": "zh"}), 404, "not_generated")
    # Nothing is being written yet: there is nothing to follow.
    assert_error(client.get(f"{BASE}/stream"), 404, "not_requested")

    page = client.get(f"/arxiv/{ID}/faq")
    assert page.status_code == 200
    assert NOTICE in page.text and "Not written for v3 yet." in page.text
    # The old answer, drawn as on any FAQ page (the spaces around bold text kept).
    assert "The <strong>v1</strong> answer" in page.text
    assert "<b>bold</b>" not in page.text and "&lt;b&gt;bold&lt;/b&gt;" in page.text
    assert "Write the FAQ again for v3 (English)</button>" in page.text
    # The Chinese page has no stale answer to show.
    zh = client.get(f"/arxiv/{ID}/faq", params={"lang": "zh"})
    assert "data-faq-stale" not in zh.text and "Generate the FAQ" in zh.text


def test_without_an_llm_or_a_queue_the_stale_answer_is_still_read(
    client_for: Callable[..., TestClient],
) -> None:
    client = client_for(llm=False, with_redis=False)
    r = client.get(BASE)
    assert r.status_code == 200 and r.json()["stale"] is True
    assert_error(client.post(BASE), 503, "llm_disabled")  # nothing can write the new one
    page = client.get(f"/arxiv/{ID}/faq")
    assert NOTICE in page.text and "no LLM is configured" in page.text
    assert "data-faq-form" not in page.text

    client = client_for(with_redis=False)
    r = client.get(BASE)
    assert r.status_code == 200
    assert_stale(r.json(), "stale")
    assert_error(client.post(BASE), 503, "no_queue")
    page = client.get(f"/arxiv/{ID}/faq")
    assert NOTICE in page.text and "The LLM queue is unavailable" in page.text


def test_the_regenerate_control_writes_the_new_version(
    client_for: Callable[..., TestClient], queue: str
) -> None:
    client = client_for()
    # The no-JavaScript form: a POST that lands back on the page, which says it is queued
    # while the old answer stays readable.
    form = client.post(f"/arxiv/{ID}/faq", follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == f"/arxiv/{ID}/faq?lang=en"
    page = client.get(f"/arxiv/{ID}/faq")
    assert "Queued for the LLM: 0 jobs ahead" in page.text
    assert NOTICE in page.text and "the new one replaces it once written" in page.text
    assert "data-faq-form" not in page.text
    # The API (what the page's script calls): the same one job, the old answer meanwhile.
    for r in (client.post(BASE), client.get(BASE)):
        assert r.status_code == 202, r.text
        assert_stale(r.json(), "queued")
        assert r.json()["position"] == 0
    with redis.Redis.from_url(REDIS_URL) as conn:
        assert conn.zcard(queue) == 1

    worker = asyncio.run(run_burst(get_settings(), REDIS_URL))
    assert worker.jobs_complete == 1

    done = client.get(BASE)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "done" and body["stale"] is False
    assert (body["version"], body["paper_version"]) == (3, 3)
    assert body["content"] == DEFAULT_REPLY
    page = client.get(f"/arxiv/{ID}/faq")
    assert "data-faq-stale" not in page.text
    assert "Written by fake-model-1 from the title and abstract of v3" in page.text
    assert "<strong>v1</strong>" not in page.text
