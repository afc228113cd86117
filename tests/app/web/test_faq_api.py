"""The FAQ's API and pages: request (POST), status, server-sent events through a real HTTP
server while a real worker generates, the cached answer, and a 4xx (never a 500) for bad
input, with the API's one error shape."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.artifacts import faqs
from app.artifacts.faqs import FaqKey
from app.db import store
from app.db.engine import make_engine
from app.ingest.records import PaperRecord
from app.settings import Settings, get_settings
from tests.conftest import need
from tests.fakes.llm_server import DEFAULT_REPLY, FakeLLM, hold
from tests.workers.test_llm import run_burst

REDIS_URL = os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ID = "2401.00001"
BASE = f"/api/v1/papers/{ID}/faq"


def make_app() -> FastAPI:
    """The FAQ pages, API and pages routers with app.main's lifespan, error handlers and the
    middleware (its own metrics registry, no rate limit: these tests are not abuse)."""
    from app.main import _http_error, _validation_error, lifespan
    from app.web import api, pages
    from app.web.middleware import install
    from app.web.pages import faq as faq_pages

    app = FastAPI(lifespan=lifespan)
    app.include_router(faq_pages.router)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    quiet = get_settings().model_copy(update={"rate_limit_per_minute": 0})
    install(app, quiet, registry=CollectorRegistry())
    return app


def seed(database_url: str, version: int = 2) -> None:
    """The one paper the FAQ tests ask about (the browser test seeds it too)."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                PaperRecord(
                    arxiv_id=ID,
                    title="Quokka tokenizers",
                    abstract="We study tokenizers.",
                    authors=["Ada Lovelace"],
                    primary_category="cs.CL",
                    categories=["cs.CL"],
                    version=version,
                    first_submitted_at=datetime(2024, 1, 1, tzinfo=UTC),
                )
            ],
        )
    engine.dispose()


def _redis_up() -> bool:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def configure(
    site_settings: Callable[..., Settings], fake_llm: FakeLLM, queue: str
) -> Callable[..., Settings]:
    """Settings for the site: the fake LLM and a real Redis unless told otherwise."""

    def go(*, llm: bool = True, with_redis: bool = True, **env: str) -> Settings:
        if with_redis:
            need(_redis_up(), f"Redis not reachable at {REDIS_URL}")
            env["REDIS_URL"] = REDIS_URL
        if llm:
            env["LLM_BASE_URL"] = fake_llm.base_url
        settings = site_settings(LLM_QUEUE=queue, LLM_MODEL="fake-model-1", **env)
        seed(settings.database_url_resolved)
        return settings

    return go


@pytest.fixture
def client_for(configure: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def go(**kw: Any) -> TestClient:
        configure(**kw)
        client = TestClient(make_app(), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield go
    for c in clients:
        c.__exit__(None, None, None)


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code:
        assert body["error"]["code"] == code, body


def sse(text: str) -> list[tuple[str, dict[str, Any], str | None]]:
    out = []
    for block in text.split("\n\n"):
        event = data = ident = None
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line.startswith("id: "):
                ident = line[4:]
        if event:
            out.append((event, data or {}, ident))
    return out


# --- without an LLM, and bad input --------------------------------------------------------


def test_without_an_llm_it_says_so(client_for: Callable[..., TestClient]) -> None:
    client = client_for(llm=False, with_redis=False)
    for r in (client.post(BASE), client.get(BASE), client.get(f"{BASE}/stream")):
        assert_error(r, 503, "llm_disabled")
        assert "PAPERSHELF_LLM_BASE_URL" in r.json()["error"]["message"]
    page = client.get(f"/arxiv/{ID}/faq")
    assert page.status_code == 200 and "no LLM is configured" in page.text
    assert "data-faq-form" not in page.text  # nothing to request
    prompt = client.get("/api/v1/faq/prompt").json()
    assert prompt["enabled"] is False and prompt["full_text"] is False
    assert len(prompt["questions"]["zh"]) == 6 and "{questions}" in prompt["user"]
    card = client.get(f"/arxiv/{ID}")
    assert f'href="/arxiv/{ID}/faq" data-ps-faq' in card.text


@pytest.mark.parametrize("segment", ["abc", "%00", "a" * 300, "2501.00001v0", "..", "%F0%9F%92%A9"])
def test_bad_ids_are_400(client_for: Callable[..., TestClient], segment: str) -> None:
    client = client_for(with_redis=False)
    for method, suffix in (("POST", ""), ("GET", ""), ("GET", "/stream")):
        r = client.request(method, f"/api/v1/papers/{segment}/faq{suffix}")
        assert 400 <= r.status_code < 500, (method, suffix, r.text)
        assert set(r.json()) == {"error"}
    assert 400 <= client.get(f"/arxiv/{segment}/faq").status_code < 500


def test_unknown_paper_and_language(client_for: Callable[..., TestClient]) -> None:
    client = client_for(with_redis=False)
    for method, suffix in (("POST", ""), ("GET", ""), ("GET", "/stream")):
        assert_error(
            client.request(method, f"/api/v1/papers/2401.99999/faq{suffix}"), 404, "not_found"
        )
        r = client.request(method, f"{BASE}{suffix}", params={"lang": "fr"})
        assert_error(r, 400, "bad_request")
        assert "use en or zh" in r.json()["error"]["message"]
        r = client.request(method, f"{BASE}{suffix}", params={"lang": "x" * 40})
        assert_error(r, 422, "invalid_parameter")
    assert client.get("/arxiv/2401.99999/faq").status_code == 404
    assert client.get(f"/arxiv/{ID}/faq", params={"lang": "fr"}).status_code == 400
    assert client.post(f"/arxiv/{ID}/faq", params={"lang": "fr"}).status_code == 400


def test_without_redis_the_queue_is_unavailable(client_for: Callable[..., TestClient]) -> None:
    client = client_for(with_redis=False)
    assert_error(client.post(BASE), 503, "no_queue")
    assert_error(client.get(BASE), 503, "no_queue")
    page = client.get(f"/arxiv/{ID}/faq")
    assert page.status_code == 200 and "unavailable" in page.text


def test_a_bad_prompt_file_is_reported(client_for: Callable[..., TestClient]) -> None:
    client = client_for(with_redis=False, FAQ_PROMPT_PATH="/nonexistent/prompt.txt")
    assert_error(client.get("/api/v1/faq/prompt"), 503, "bad_prompt")
    assert client.get("/faq/prompt").status_code == 503


# --- requesting, status, cached ------------------------------------------------------------


def test_request_status_and_single_job(client_for: Callable[..., TestClient], queue: str) -> None:
    client = client_for()
    assert_error(client.get(BASE), 404, "not_generated")
    assert_error(client.get(f"{BASE}/stream"), 404, "not_requested")
    first = client.post(BASE)
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["status"] == "queued" and body["position"] == 0 and body["content"] is None
    assert body["stream_url"] == f"{BASE}/stream?lang=en" and body["version"] == 2
    assert client.post(BASE, params={"lang": "en-US"}).json()["position"] == 0  # the same job
    zh = client.post(BASE, params={"lang": "zh"})
    assert zh.status_code == 202 and zh.json()["position"] == 1  # behind the English one
    status = client.get(BASE)
    assert status.status_code == 202 and status.json()["status"] == "queued"
    with redis.Redis.from_url(REDIS_URL) as r:
        assert r.zcard(queue) == 2
    page = client.get(f"/arxiv/{ID}/faq")
    assert "Queued for the LLM: 0 jobs ahead" in page.text
    assert 'http-equiv="refresh"' in page.text  # inside <noscript>
    # The no-JavaScript form: a POST that lands back on the page.
    form = client.post(f"/arxiv/{ID}/faq?lang=zh", follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == f"/arxiv/{ID}/faq?lang=zh"


def test_a_stored_answer_is_served_at_once(client_for: Callable[..., TestClient]) -> None:
    client = client_for(with_redis=False)  # no queue needed for stored answers
    settings = get_settings()
    engine = make_engine(settings.database_url_resolved)
    evil = "## Problem\n<script>alert(1)</script> **bold** and $x^2$\n\n- item"
    with engine.begin() as conn:
        faqs.save_faq(
            conn, FaqKey(ID, 2, "en", "fake-model-1"), evil, prompt_hash="p", finish_reason="stop"
        )
    engine.dispose()
    for r in (client.get(BASE), client.post(BASE)):
        assert r.status_code == 200 and r.json()["status"] == "done"
        assert r.json()["content"] == evil and r.json()["cached"] is True
    stream = client.get(f"{BASE}/stream")
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert [(e, d["content"]) for e, d, _ in sse(stream.text)] == [("done", evil)]
    page = client.get(f"/arxiv/{ID}/faq")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<h3>Problem</h3>" in page.text and "<strong>bold</strong>" in page.text
    assert "<math" in page.text and "<li>item</li>" in page.text
    assert_error(client.get(BASE, params={"lang": "zh"}), 503, "no_queue")  # not stored


# --- streaming through a real server while a real worker writes -----------------------------


class Server:
    """uvicorn in a thread on 127.0.0.1 (port 0): real HTTP, real streaming."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            threading.Event().wait(0.02)
        sock = self.server.servers[0].sockets[0]
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(configure: Callable[..., Settings]) -> AsyncIterator[tuple[str, Settings]]:
    settings = configure()
    with Server(make_app()) as url:
        yield url, settings


async def collect(client: httpx.AsyncClient, url: str) -> tuple[httpx.Headers, str]:
    async with client.stream("GET", url) as r:
        assert r.status_code == 200
        text = "".join([chunk async for chunk in r.aiter_text()])
        return r.headers, text


@pytest.mark.anyio
async def test_streamed_to_two_readers_then_cached(
    served: tuple[str, Settings], fake_llm: FakeLLM
) -> None:
    url, settings = served
    fake_llm.inject(hold(after=3))
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        first = await client.post(BASE)
        assert first.status_code == 202 and first.json()["status"] == "queued"
        stream_url = first.json()["stream_url"]
        early = asyncio.create_task(collect(client, stream_url))
        worker = asyncio.create_task(run_burst(settings, REDIS_URL))
        assert await asyncio.to_thread(fake_llm.held.wait, 10)
        again = await client.post(BASE)  # while it is being written: join it
        assert again.status_code == 202 and again.json()["status"] == "running"
        late = asyncio.create_task(collect(client, stream_url))
        fake_llm.release()
        assert (await asyncio.wait_for(worker, 20)).jobs_complete == 1
        results = await asyncio.wait_for(asyncio.gather(early, late), 20)
        for headers, text in results:
            assert headers["cache-control"] == "no-cache"
            assert "content-security-policy" in headers  # the middleware saw it through
            events = sse(text)
            names = [e for e, _, _ in events]
            assert names[-1] == "done" and "start" in names and "delta" in names
            assert "".join(d["text"] for e, d, _ in events if e == "delta") == DEFAULT_REPLY
            assert events[-1][1]["content"] == DEFAULT_REPLY
            assert all(i for e, _, i in events if e != "queued")  # resumable by event id
        assert len(fake_llm.completions()) == 1
        done = await client.get(BASE)
        assert done.status_code == 200 and done.json()["content"] == DEFAULT_REPLY
        assert done.json()["model"] == "fake-model-1" and done.json()["finish_reason"] == "stop"
        cached = await client.post(BASE)
        assert cached.status_code == 200 and cached.json()["cached"] is True
        _, text = await collect(client, stream_url)
        assert [e for e, _, _ in sse(text)] == ["done"]
        page = await client.get(f"/arxiv/{ID}/faq")
        assert "<h3>1. What problem does this paper try to solve?</h3>" in page.text
        assert "Written by fake-model-1" in page.text


def test_fuzzed_ids_and_languages_never_5xx(client_for: Callable[..., TestClient]) -> None:
    from urllib.parse import quote

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from app.ingest.ids import InvalidArxivId, parse_arxiv_id

    client = client_for()

    def ours(segment: str) -> bool:
        try:
            return parse_arxiv_id(segment)[0] == ID
        except InvalidArxivId:
            return False

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        segment=st.one_of(st.text(min_size=1, max_size=40), st.sampled_from(["2401.00001v9"])),
        lang=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["zh", "en-GB"])),
    )
    def check(segment: str, lang: str | None) -> None:
        params = {} if lang is None else {"lang": lang}
        suffixes = ["", "/stream"] if not ours(segment) else [""]  # no queued job to follow
        for method, suffix in [("POST", ""), *(("GET", s) for s in suffixes)]:
            path = f"/api/v1/papers/{quote(segment, safe='')}/faq{suffix}"
            r = client.request(method, path, params=params)
            assert r.status_code < 500, (method, path, params, r.text)
            if r.status_code >= 400:
                assert set(r.json()) == {"error"}, r.text

    check()


FAQ_OPERATIONS = [
    ("/api/v1/papers/{arxiv_id}/faq", "POST"),
    ("/api/v1/papers/{arxiv_id}/faq", "GET"),
    ("/api/v1/faq/prompt", "GET"),
]


@pytest.mark.parametrize(
    ("path", "method"), FAQ_OPERATIONS, ids=[f"{m} {p}" for p, m in FAQ_OPERATIONS]
)
def test_openapi_conformance(client_for: Callable[..., TestClient], path: str, method: str) -> None:
    """Schemathesis over the FAQ operations (the stream is left out: a request for the one
    stored paper would follow a queued job that no worker here runs)."""
    try:
        import schemathesis
        from schemathesis import checks as st_checks
    except ImportError:
        need(False, "schemathesis is not installed (pip install schemathesis)")
    from hypothesis import HealthCheck, given, settings

    client = client_for()
    operation = schemathesis.openapi.from_asgi("/openapi.json", client.app)[path][method]

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        case.call_and_validate(
            checks=[
                st_checks.not_a_server_error,
                st_checks.status_code_conformance,
                st_checks.content_type_conformance,
                st_checks.response_schema_conformance,
            ]
        )

    check()
