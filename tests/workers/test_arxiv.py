"""The arXiv client against the fake arXiv (real HTTP on loopback) and a real Redis."""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from app import __version__
from app.ingest.records import AnnounceKind, DocumentError, UpstreamError
from app.ingest.rss import parse_feed
from app.settings import Settings
from tests.fakes.arxiv_server import (
    FakeArxiv,
    FakePaper,
    delay,
    empty,
    malformed,
    paper_from_listing,
    repeat_page,
    status,
    truncate,
)
from workers import arxiv as arxiv_module
from workers.arxiv import (
    API_ID_CHUNK,
    ArxivClient,
    RepeatedPage,
    RetryableStatus,
    TruncatedBody,
    UnusablePdf,
    UpstreamHTTPError,
    UpstreamUnavailable,
    arxiv_client,
    make_http_client,
    user_agent,
)
from workers.politeness import DEPLOYMENT_KEY, LocalRateLimiter, RedisRateLimiter

pytestmark = pytest.mark.anyio

DAY = date(2024, 2, 26)  # a Monday


def listing_row(n: int, categories: list[str], **extra: Any) -> dict[str, Any]:
    """A row in the listing-JSONL format of shared/data/arxiv/papers_*.jsonl.gz."""
    return {
        "id": f"2402.{15000 + n:05d}",
        "listing_date": DAY.isoformat(),
        "title": f"Paper number {n}",
        "authors": ["Ada Lovelace", f"Author {n}"],
        "categories": categories,
        "comment": None,
        "abstract": f"We study problem {n} & its friends <carefully>.",
        **extra,
    }


@pytest.fixture
def papers() -> list[FakePaper]:
    out = [
        paper_from_listing(listing_row(1, ["cs.AI"])),
        paper_from_listing(listing_row(2, ["cs.LG", "cs.AI"])),
        paper_from_listing(listing_row(3, ["stat.ML", "cs.LG"])),
        # A replacement: three versions, announced as "replace" in its primary.
        paper_from_listing({**listing_row(4, ["cs.AI", "cs.CL"]), "id": "2311.04567"}, versions=3),
        paper_from_listing({**listing_row(5, ["cs.AI"]), "id": "cs/0112017"}),
        paper_from_listing(listing_row(6, ["math.OC"])),
    ]
    return out


@pytest.fixture
def fake(fake_arxiv: FakeArxiv, papers: list[FakePaper]) -> FakeArxiv:
    fake_arxiv.feed_day = DAY
    fake_arxiv.add_papers(papers)
    return fake_arxiv


class Sleeps:
    """An injected sleep that records back-off waits instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@asynccontextmanager
async def client_for(
    fake: FakeArxiv, redis: Redis, key: str, sleeps: Sleeps | None = None, **overrides: Any
) -> AsyncIterator[ArxivClient]:
    settings = fake.settings(**{"arxiv_max_attempts": 3, **overrides})
    async with make_http_client(settings) as http:
        yield arxiv_client(http, redis, settings, key=key, sleep=sleeps or Sleeps())


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def arxiv(
    fake: FakeArxiv, redis_client: Redis, redis_key: str, sleeps: Sleeps
) -> AsyncIterator[ArxivClient]:
    async with client_for(fake, redis_client, redis_key, sleeps) as client:
        yield client


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- happy paths -------------------------------------------------------------------------


async def test_rss_parses_ids_versions_and_announcements(
    arxiv: ArxivClient, fake: FakeArxiv
) -> None:
    page = await arxiv.rss(["cs.AI", "cs.LG"])
    (request,) = fake.requests
    assert request.path == "/rss/cs.AI+cs.LG"
    assert request.headers["user-agent"] == f"Papershelf/{__version__} (+mailto:admin@example.org)"
    assert page.errors == []
    assert page.day == DAY and page.feed_categories == ["cs.AI", "cs.LG"]
    versions = {p.arxiv_id: p.version for p in page.papers}
    assert versions == {
        "2402.15001": 1,
        "2402.15002": 1,
        "2311.04567": 3,
        "cs/0112017": 2,  # an old id listed in 2024: a replacement
        "2402.15003": 1,
    }
    by_id = {p.arxiv_id: p for p in page.papers}
    assert by_id["2402.15001"].abstract == "We study problem 1 & its friends <carefully>."
    kinds = {(a.category, a.kind) for a in by_id["2311.04567"].announcements}
    assert kinds == {("cs.AI", AnnounceKind.REPLACE)}
    kinds = {(a.category, a.kind) for a in by_id["2402.15003"].announcements}
    assert kinds == {("cs.LG", AnnounceKind.CROSS)}


async def test_atom_feed_route(arxiv: ArxivClient, fake: FakeArxiv) -> None:
    page = parse_feed(await arxiv.get(f"{fake.url}/atom/math.OC"))
    assert [p.arxiv_id for p in page.papers] == ["2402.15006"]
    assert page.day == DAY and page.feed_categories == ["math.OC"]


async def test_empty_weekend_feed_is_an_empty_page(arxiv: ArxivClient, fake: FakeArxiv) -> None:
    saturday = DAY + timedelta(days=5)
    fake.inject(empty(day=saturday))
    page = await arxiv.rss(["cs.AI"])
    assert page.papers == [] and page.errors == []
    assert page.day == saturday and page.total == 0


async def test_query_ids_chunks_and_merges(arxiv: ArxivClient, fake: FakeArxiv) -> None:
    many = [paper_from_listing(listing_row(100 + i, ["cs.CL"])) for i in range(140)]
    fake.add_papers(many, announce=False)
    wanted = [p.arxiv_id for p in many] + ["2311.04567v2", "2402.15001", "2402.99999"]
    page = await arxiv.query_ids(wanted)
    requests = fake.requests_to("/api/query")
    assert len(requests) == 2
    sizes = [len((r.param("id_list") or "").split(",")) for r in requests]
    assert sizes == [API_ID_CHUNK, len(wanted) - API_ID_CHUNK]
    assert [r.param("max_results") for r in requests] == [str(n) for n in sizes]
    # The unknown id is absent; the versioned one comes back at the version asked for.
    assert len(page.papers) == 142 and page.total == 142 and page.errors == []
    versions = {p.arxiv_id: p.version for p in page.papers}
    assert versions["2311.04567"] == 2 and versions["2402.15001"] == 1
    assert "2402.99999" not in versions


async def test_query_ids_of_nothing_sends_nothing(arxiv: ArxivClient, fake: FakeArxiv) -> None:
    page = await arxiv.query_ids([])
    assert page.papers == [] and page.total == 0 and fake.requests == []


async def test_list_records_follows_tokens_to_completion(
    arxiv: ArxivClient, fake: FakeArxiv
) -> None:
    fake.oai_page_size = 2
    pages = []
    token = None
    while True:
        page = await arxiv.list_records(set_spec="cs", from_=DAY, token=token)
        pages.append(page)
        token = page.resumption_token
        if not token:
            break
    ids = [p.arxiv_id for page in pages for p in page.papers]
    cs_ids = sorted(p.arxiv_id for p in fake.papers.values() if "cs" in p.set_specs())
    assert sorted(ids) == cs_ids and len(ids) == len(set(ids)) == 5
    assert [(p.start, p.total) for p in pages] == [(0, 5), (2, 5), (4, 5)]
    first, *rest = fake.requests_to("/oai")
    assert first.query == {
        "verb": ["ListRecords"],
        "metadataPrefix": ["arXivRaw"],
        "set": ["cs"],
        "from": [DAY.isoformat()],
    }
    assert len(rest) == 2
    assert all(set(r.query) == {"verb", "resumptionToken"} for r in rest)
    by_id = {p.arxiv_id: p for page in pages for p in page.papers}
    assert by_id["2311.04567"].version == 3 and len(by_id["2311.04567"].versions) == 3


async def test_list_records_filters_by_set_and_dates(arxiv: ArxivClient, fake: FakeArxiv) -> None:
    fake.papers["2402.15001"].datestamp = DAY - timedelta(days=10)
    page = await arxiv.list_records(set_spec="cs:cs:AI", from_=DAY, until=DAY)
    assert sorted(p.arxiv_id for p in page.papers) == ["2311.04567", "2402.15002", "cs/0112017"]
    assert page.resumption_token is None
    page = await arxiv.list_records(set_spec="math")
    assert [p.arxiv_id for p in page.papers] == ["2402.15006"]


async def test_list_records_no_records_match_is_an_empty_page(arxiv: ArxivClient) -> None:
    page = await arxiv.list_records(from_=DAY + timedelta(days=1))
    assert page.papers == [] and page.total == 0 and page.resumption_token is None


async def test_bad_resumption_token_is_an_upstream_error(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    with pytest.raises(UpstreamError) as info:
        await arxiv.list_records(token="123|400")
    assert info.value.code == "badResumptionToken"
    assert len(fake.requests) == 1 and sleeps.calls == []


async def test_harvest_skips_a_repeated_page(arxiv: ArxivClient, fake: FakeArxiv) -> None:
    fake.oai_page_size = 2
    harvest = arxiv.harvest()
    pages = [await anext(harvest)]
    # Asked for the second page, the server sends the first one again, with the same token.
    fake.inject(repeat_page())
    pages += [page async for page in harvest]
    ids = [p.arxiv_id for page in pages for p in page.papers]
    assert len(ids) == len(set(ids)) == len(fake.papers) == 6
    oai = fake.requests_to("/oai")
    assert [r.fault for r in oai] == [None, "repeat_page", None, None]
    assert oai[1].param("resumptionToken") == oai[2].param("resumptionToken")


async def test_harvest_gives_up_on_a_token_loop(
    arxiv: ArxivClient, fake: FakeArxiv, caplog: pytest.LogCaptureFixture
) -> None:
    fake.oai_page_size = 2
    harvest = arxiv.harvest()
    await anext(harvest)
    fake.inject(repeat_page(times=10))
    with (
        caplog.at_level(logging.WARNING, logger="workers.arxiv"),
        pytest.raises(UpstreamUnavailable, match="keeps repeating"),
    ):
        await anext(harvest)
    assert len(fake.requests_to("/oai")) == 1 + 3  # arxiv_max_attempts repeats
    lines = [r.getMessage() for r in caplog.records if r.name == "workers.arxiv"]
    assert [line[-3:] for line in lines] == ["(1)", "(2)", "(3)"]
    assert all(line.startswith("OAI-PMH served the page before token ") for line in lines)


# --- transient failures are retried --------------------------------------------------------


async def test_503_with_retry_after_then_success(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    before = metric("papershelf_upstream_retries_total", source="rss", reason="503")
    fake.inject(status(503, retry_after=7))
    with caplog.at_level(logging.WARNING, logger="workers.arxiv"):
        page = await arxiv.rss(["cs.AI"])
    assert len(page.papers) == 4
    assert [r.status for r in fake.requests] == [503, 200]
    (slept,) = sleeps.calls
    assert slept >= 7  # Retry-After beats the ~1-2 s exponential back-off
    assert metric("papershelf_upstream_retries_total", source="rss", reason="503") == before + 1
    (line,) = [r.getMessage() for r in caplog.records if r.name == "workers.arxiv"]
    assert f"{fake.url}/rss/cs.AI" in line and "attempt 1/3" in line and "HTTP 503" in line


async def test_429_with_http_date_retry_after(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    fake.inject(status(429, retry_after=datetime.now(UTC) + timedelta(seconds=40)))
    await arxiv.rss(["cs.AI"])
    (slept,) = sleeps.calls
    assert 20 <= slept <= 41  # 40 s ahead, to the second


async def test_backoff_grows_and_is_capped(
    fake: FakeArxiv, redis_client: Redis, redis_key: str
) -> None:
    sleeps = Sleeps()
    fake.inject(status(502, times=5))
    async with client_for(
        fake, redis_client, redis_key, sleeps, arxiv_max_attempts=6, arxiv_max_backoff=5
    ) as client:
        await client.rss(["cs.AI"])
    assert len(sleeps.calls) == 5
    assert 1 <= sleeps.calls[0] <= 2 and 2 <= sleeps.calls[1] <= 3
    assert all(s <= 5 for s in sleeps.calls) and sleeps.calls[-1] == 5


async def test_read_timeout_then_success(
    fake: FakeArxiv, redis_client: Redis, redis_key: str
) -> None:
    sleeps = Sleeps()
    fake.inject(delay(3, path="/api"))
    async with client_for(fake, redis_client, redis_key, sleeps, arxiv_timeout=0.3) as client:
        page = await client.query_ids(["2402.15001"])
    assert [p.arxiv_id for p in page.papers] == ["2402.15001"]
    assert [r.fault for r in fake.requests] == ["delay", None]
    assert len(sleeps.calls) == 1


async def test_truncated_body_then_success(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    fake.inject(truncate(path="/api"))
    page = await arxiv.query_ids(["2402.15001", "2402.15002", "2311.04567"])
    assert sorted(p.arxiv_id for p in page.papers) == ["2311.04567", "2402.15001", "2402.15002"]
    assert [r.fault for r in fake.requests] == ["truncate", None]
    assert len(sleeps.calls) == 1


async def test_short_body_is_detected_even_without_h11(redis_client: Redis, redis_key: str) -> None:
    """Content-Length larger than what arrived is a transient failure of our own making too."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, headers={"Content-Length": "1000"}, content=b"<rss>")

    s = Settings(arxiv_min_interval=0, arxiv_max_attempts=2)
    limiter = RedisRateLimiter.from_settings(redis_client, s, key=redis_key)
    sleeps = Sleeps()
    async with make_http_client(s, transport=httpx.MockTransport(handler)) as http:
        client = ArxivClient(http, limiter, s, sleep=sleeps)
        with pytest.raises(UpstreamUnavailable, match="cut short") as info:
            await client.get("https://rss.arxiv.org/rss/cs.AI")
    assert calls == 2 and isinstance(info.value.__cause__, TruncatedBody)


async def test_exhausted_attempts_raise_upstream_unavailable(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    fake.inject(status(503, retry_after=1, times=10))
    with pytest.raises(UpstreamUnavailable) as info:
        await arxiv.rss(["cs.AI"])
    err = info.value
    assert len(fake.requests) == 3 and len(sleeps.calls) == 2
    assert err.url == f"{fake.url}/rss/cs.AI" and "HTTP 503" in err.reason
    assert err.retry_after == 1
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.url, copy.reason, copy.retry_after, str(copy)) == (
        err.url,
        err.reason,
        err.retry_after,
        str(err),
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_retried_then_unavailable(
    redis_client: Redis, redis_key: str
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    s = Settings(arxiv_rss_url=url, arxiv_min_interval=0, arxiv_max_attempts=2)
    sleeps = Sleeps()
    limiter = RedisRateLimiter.from_settings(redis_client, s, key=redis_key)
    async with make_http_client(s) as http:
        client = ArxivClient(http, limiter, s, sleep=sleeps)
        with pytest.raises(UpstreamUnavailable, match="ConnectError"):
            await client.rss(["cs.AI"])
    assert len(sleeps.calls) == 1
    assert await limiter.held() == 0


# --- what is not retried --------------------------------------------------------------------


async def test_malformed_feed_raises_document_error_without_retry(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    fake.inject(malformed())
    with pytest.raises(DocumentError):
        await arxiv.rss(["cs.AI"])
    assert len(fake.requests) == 1 and sleeps.calls == []


async def test_404_raises_http_error_without_retry(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    before = metric("papershelf_upstream_requests_total", source="rss", status="404")
    fake.inject(status(404))
    with pytest.raises(UpstreamHTTPError) as info:
        await arxiv.rss(["cs.AI"])
    err = info.value
    assert err.status == 404 and err.url == f"{fake.url}/rss/cs.AI"
    assert "Fake arXiv says no" in err.body and "HTTP 404" in str(err)
    assert len(fake.requests) == 1 and sleeps.calls == []
    assert metric("papershelf_upstream_requests_total", source="rss", status="404") == before + 1
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.status, copy.url, copy.body, str(copy)) == (
        err.status,
        err.url,
        err.body,
        str(err),
    )


async def test_api_error_feed_is_an_http_error_with_its_message(
    arxiv: ArxivClient, fake: FakeArxiv
) -> None:
    with pytest.raises(UpstreamHTTPError, match="incorrect id format for abc") as info:
        await arxiv.query_ids(["abc"])
    assert info.value.status == 400 and len(fake.requests) == 1


async def test_cancellation_is_not_retried_and_frees_the_lease(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    fake.inject(delay(30))
    task = asyncio.create_task(arxiv.rss(["cs.AI"]))
    for _ in range(500):  # until the request is at the server (bounded: 5 s)
        if fake.requests:
            break
        await asyncio.sleep(0.01)
    assert await arxiv.limiter.held() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(fake.requests) == 1 and sleeps.calls == []
    assert await arxiv.limiter.held() == 0


async def test_redirect_hops_each_go_through_the_limiter(
    fake: FakeArxiv, redis_client: Redis, redis_key: str
) -> None:
    interval = 0.2
    fake.inject(status(301, headers={"Location": "/rss/cs.LG"}))
    async with client_for(fake, redis_client, redis_key, arxiv_min_interval=interval) as client:
        page = await client.rss(["cs.AI"])
    assert page.feed_categories == ["cs.LG"]
    first, second = fake.requests
    assert (first.path, second.path) == ("/rss/cs.AI", "/rss/cs.LG")
    assert second.started - first.started >= 0.9 * interval


# --- PDFs ----------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n" + b"x" * 5000 + b"\n%%EOF\n"


async def test_fetch_pdf_through_the_limiter_with_the_client_user_agent(
    arxiv: ArxivClient, fake: FakeArxiv
) -> None:
    fake.pdfs["2402.15001"] = PDF
    before = metric("papershelf_upstream_requests_total", source="pdf", status="200")
    assert await arxiv.fetch_pdf(f"{fake.pdf_url}/2402.15001v1") == PDF
    (request,) = fake.requests
    assert request.path == "/pdf/2402.15001v1"
    assert request.headers["user-agent"] == user_agent(arxiv.settings)
    assert metric("papershelf_upstream_requests_total", source="pdf", status="200") == before + 1
    assert await arxiv.limiter.held() == 0  # type: ignore[attr-defined]


async def test_fetch_pdf_retries_transient_failures(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    fake.pdfs["2402.15001"] = PDF
    fake.inject(status(503, retry_after=4, path="/pdf"), truncate(path="/pdf"))
    assert await arxiv.fetch_pdf(f"{fake.pdf_url}/2402.15001") == PDF
    assert [r.fault for r in fake.requests] == ["status", "truncate", None]
    assert len(sleeps.calls) == 2 and sleeps.calls[0] >= 4


async def test_fetch_pdf_follows_redirects_each_through_the_limiter(
    fake: FakeArxiv, redis_client: Redis, redis_key: str
) -> None:
    interval = 0.2
    fake.pdfs["2402.15001v2"] = PDF
    fake.inject(status(302, headers={"Location": "/pdf/2402.15001v2"}, path="/pdf"))
    async with client_for(fake, redis_client, redis_key, arxiv_min_interval=interval) as client:
        assert await client.fetch_pdf(f"{fake.pdf_url}/2402.15001") == PDF
    first, second = fake.requests
    assert (first.path, second.path) == ("/pdf/2402.15001", "/pdf/2402.15001v2")
    assert second.started - first.started >= 0.9 * interval


async def test_fetch_pdf_missing_is_an_http_error_without_retry(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    with pytest.raises(UpstreamHTTPError) as info:
        await arxiv.fetch_pdf(f"{fake.pdf_url}/2402.15009")
    assert info.value.status == 404 and len(fake.requests) == 1 and sleeps.calls == []


async def test_fetch_pdf_refuses_what_is_not_a_pdf(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps
) -> None:
    fake.pdfs["2402.15001"] = b"<html>a page about the paper</html>"
    with pytest.raises(UnusablePdf, match=r"^not a PDF$"):
        await arxiv.fetch_pdf(f"{fake.pdf_url}/2402.15001")
    assert len(fake.requests) == 1 and sleeps.calls == []


async def test_fetch_pdf_stops_reading_past_the_size_cap(
    arxiv: ArxivClient, fake: FakeArxiv, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arxiv_module, "MAX_PDF_BYTES", 1000)
    fake.pdfs["2402.15001"] = PDF
    with pytest.raises(UnusablePdf, match=r"^larger than 1000 bytes$"):
        await arxiv.fetch_pdf(f"{fake.pdf_url}/2402.15001")
    assert len(fake.requests) == 1 and sleeps.calls == []
    assert await arxiv.limiter.held() == 0  # type: ignore[attr-defined]


# --- the factory ----------------------------------------------------------------------------


async def test_arxiv_client_shares_the_deployment_limiter(redis_client: Redis) -> None:
    s = Settings(arxiv_min_interval=2.5, arxiv_max_connections=2, arxiv_lease_ttl=12)
    async with make_http_client(s) as http:
        client = arxiv_client(http, redis_client, s)
        limiter = client.limiter
        assert isinstance(limiter, RedisRateLimiter)
        assert limiter.key == DEPLOYMENT_KEY
        assert (limiter.min_interval, limiter.max_connections, limiter.lease_ttl) == (2.5, 2, 12)
        assert client.http is http and client.settings is s


async def test_arxiv_client_without_redis_spaces_requests_in_process(fake: FakeArxiv) -> None:
    interval = 0.2
    s = fake.settings(arxiv_min_interval=interval)
    async with make_http_client(s) as http:
        client = arxiv_client(http, None, s)
        assert isinstance(client.limiter, LocalRateLimiter)
        await asyncio.gather(*(client.rss(["cs.AI"]) for _ in range(3)))
    starts = sorted(r.started for r in fake.requests)
    assert all(b - a >= 0.9 * interval for a, b in itertools.pairwise(starts))


# --- small pieces -------------------------------------------------------------------------


def test_errors_pickle() -> None:
    for err in (
        RetryableStatus(503, "https://x", 2.0),
        TruncatedBody("https://x", 100, 50),
        UpstreamUnavailable("https://x", "HTTP 503"),
        UpstreamHTTPError(404, "https://x"),
        UnusablePdf("https://x", "not a PDF"),
        RepeatedPage("123|400"),
    ):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err) and copy.args == err.args


def test_http_client_settings() -> None:
    s = Settings(arxiv_contact="ops@example.net", arxiv_timeout=12)
    http = make_http_client(s)
    assert http.headers["User-Agent"] == f"Papershelf/{__version__} (+mailto:ops@example.net)"
    assert http.timeout.read == 12 and http.follow_redirects is True
