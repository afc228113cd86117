"""The async arXiv client: polite (one Redis limiter for the deployment), bounded retries.

`arxiv_client(http, redis, settings)` is the one way to build it, for every pool: one
User-Agent (`make_http_client`), the deployment's limiter on one Redis key, one retry policy.
It reads the feeds, the query API and OAI-PMH (`rss`, `query_ids`, `list_records`, `harvest`)
and downloads PDFs (`fetch_pdf`, for thumbnails).

Every HTTP request — each attempt and each redirect hop — starts inside `limiter.slot()`, so
the deployment never exceeds arXiv's request rate or connection count. Retries
(workers.retrying) use a *positive* filter: only transport failures that a later attempt can
fix (timeouts, refused/reset connections, bodies cut short) and HTTP 429/5xx are retried, with
exponential back-off plus jitter, capped at `arxiv_max_backoff`, or the server's `Retry-After`
when that is longer. Cancellation is never retried. Other 4xx raise `UpstreamHTTPError` at
once; exhausted retries raise `UpstreamUnavailable` (both picklable: arq pickles a failed
job's exception). A body that does not parse raises the parser's `DocumentError` and is not
retried here: the job fails and arq retries it later.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import Counter, Histogram
from tenacity.wait import wait_base

from app import __version__
from app.ingest.arxiv_api import parse_api_response
from app.ingest.oai_pmh import OaiPage, parse_oai_pmh
from app.ingest.records import DocumentError, ParsedPage, UpstreamError
from app.ingest.rss import parse_feed
from app.settings import Settings
from workers import stopping
from workers.politeness import DEPLOYMENT_KEY, Limiter, LocalRateLimiter, RedisRateLimiter
from workers.retrying import (
    RetryCallState,
    Sleep,
    call_with_retries,
    log_before_sleep,
    parse_retry_after,
    wait_exponential_jitter,
    wait_none,
    wait_retry_after,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

Params = Mapping[str, str | int]

API_ID_CHUNK = 100  # ids per `id_list` request; keeps URLs short and responses small
MAX_REDIRECTS = 5
# PDFs (thumbnails): the size a download is cut off at, and httpx's default redirect limit,
# which PDF downloads have always followed.
MAX_PDF_BYTES = 40_000_000
PDF_MAX_REDIRECTS = 20
_EXCERPT_CHARS = 300
_CATEGORY = re.compile(r"[A-Za-z][\w.-]*")
_TAG = re.compile(r"<[^>]*>")

REQUESTS = Counter(
    "papershelf_upstream_requests",
    "HTTP requests to arXiv, by source and HTTP status (or transport failure)",
    ["source", "status"],
)
RETRIES = Counter(
    "papershelf_upstream_retries",
    "Retried arXiv requests, by source and reason",
    ["source", "reason"],
)
REQUEST_SECONDS = Histogram(
    "papershelf_upstream_request_seconds",
    "Duration of one HTTP request to arXiv (inside the politeness slot)",
    ["source"],
)
WAIT_SECONDS = Histogram(
    "papershelf_upstream_limiter_wait_seconds",
    "Time spent waiting for the shared politeness limiter",
    ["source"],
    buckets=(0.01, 0.1, 0.5, 1, 3, 6, 12, 30, 60, 120, 300),
)


# --- errors ------------------------------------------------------------------------------


class ArxivClientError(Exception):
    """Base of the client's own errors. Subclasses pass every constructor argument to
    `Exception.__init__`, which is what makes them round-trip through pickle."""


class UpstreamHTTPError(ArxivClientError):
    """arXiv answered with a status that retrying will not change (404, 400, …)."""

    def __init__(self, status: int, url: str, body: str = "") -> None:
        super().__init__(status, url, body)
        self.status = status
        self.url = url
        self.body = body

    def __str__(self) -> str:
        excerpt = f": {self.body}" if self.body else ""
        return f"arXiv answered HTTP {self.status} for {self.url}{excerpt}"


class UpstreamUnavailable(ArxivClientError):
    """Every attempt failed transiently; `retry_after` is the server's last hint, if any."""

    def __init__(self, url: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(url, reason, retry_after)
        self.url = url
        self.reason = reason
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"arXiv unavailable for {self.url}: {self.reason}"


class RetryableStatus(ArxivClientError):
    """HTTP 429 or 5xx: worth another attempt (after `retry_after` when the server said)."""

    def __init__(self, status: int, url: str, retry_after: float | None = None) -> None:
        super().__init__(status, url, retry_after)
        self.status = status
        self.url = url
        self.retry_after = retry_after

    def __str__(self) -> str:
        hint = f" (Retry-After {self.retry_after:g}s)" if self.retry_after is not None else ""
        return f"HTTP {self.status}{hint}"


class UnusablePdf(ArxivClientError):
    """A PDF download that retrying will not fix: too large, or not a PDF at all."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class RepeatedPage(ArxivClientError):
    """OAI-PMH answered a resumption token with the page before it, token and all."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token

    def __str__(self) -> str:
        return f"resumption token {self.token} keeps repeating"


class TruncatedBody(ArxivClientError):
    """Fewer body bytes than Content-Length announced (h11 normally catches this first)."""

    def __init__(self, url: str, expected: int, received: int) -> None:
        super().__init__(url, expected, received)
        self.url = url
        self.expected = expected
        self.received = received

    def __str__(self) -> str:
        return f"body cut short: {self.received} of {self.expected} bytes"


# The positive list: only these are retried (asyncio.CancelledError is not an Exception, and
# is not here, so a cancelled job stops at once).
TRANSIENT: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,  # includes "peer closed connection without sending complete body"
    RetryableStatus,
    TruncatedBody,
)


def _label(exc: BaseException) -> str:
    """A short, low-cardinality name for metrics."""
    if isinstance(exc, RetryableStatus):
        return str(exc.status)
    if isinstance(exc, TruncatedBody):
        return "truncated"
    if isinstance(exc, UnusablePdf):
        return "too_large"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol_error"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "network_error"
    return type(exc).__name__


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ArxivClientError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _excerpt(response: httpx.Response, content: bytes) -> str:
    """The readable part of an error body: the API's error-feed message when it is one,
    else the text without markup, shortened."""
    if b"/api/errors#" in content:
        try:
            parse_api_response(content, str(response.url))
        except UpstreamError as exc:
            return str(exc)
        except DocumentError:
            pass
    try:  # as `response.text` decodes it
        text = content.decode(response.encoding or "utf-8", errors="replace")
    except Exception:  # undecodable body: the status says enough
        return ""
    text = _TAG.sub(" ", text[: _EXCERPT_CHARS * 10])
    return " ".join(text.split())[:_EXCERPT_CHARS]


# --- client ------------------------------------------------------------------------------


def user_agent(settings: Settings) -> str:
    return f"Papershelf/{__version__} (+mailto:{settings.arxiv_contact})"


def make_http_client(settings: Settings, **kwargs: Any) -> httpx.AsyncClient:
    """The worker's one httpx client for arXiv (share it through arq's `ctx`).

    The pool is capped at `arxiv_max_connections` too: the Redis limiter is what keeps the
    deployment polite, this only stops one process from even trying more."""
    options: dict[str, Any] = {
        "headers": {"User-Agent": user_agent(settings)},
        "timeout": httpx.Timeout(settings.arxiv_timeout),
        "follow_redirects": True,
        "limits": httpx.Limits(max_connections=max(1, settings.arxiv_max_connections)),
    }
    options.update(kwargs)
    return httpx.AsyncClient(**options)


def arxiv_client(
    http: httpx.AsyncClient,
    redis: Redis | None,
    settings: Settings,
    *,
    key: str = DEPLOYMENT_KEY,
    sleep: Sleep = stopping.sleep,
) -> ArxivClient:
    """The client every pool uses, on `http` (from `make_http_client`), behind the
    deployment's limiter in `redis` under `key`. Without Redis (a command run inline) the
    limiter keeps the same rules within this process."""
    limiter: Limiter = (
        LocalRateLimiter.from_settings(settings)
        if redis is None
        else RedisRateLimiter.from_settings(redis, settings, key=key)
    )
    return ArxivClient(http, limiter, settings, sleep=sleep)


def upstream_wait(settings: Settings) -> wait_base:
    """The back-off of every upstream call (arXiv, and alert webhooks): exponential from 1 s
    (plus up to 1 s jitter), capped at `arxiv_max_backoff`; Retry-After may exceed the cap."""
    return wait_retry_after(wait_exponential_jitter(max=settings.arxiv_max_backoff, jitter=1))


class ArxivClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        limiter: Limiter,
        settings: Settings,
        *,
        sleep: Sleep = stopping.sleep,
    ) -> None:
        self.http = http
        self.limiter = limiter
        self.settings = settings
        self._sleep = sleep
        self._wait = upstream_wait(settings)

    # -- raw GET --------------------------------------------------------------------------

    def source_of(self, url: str) -> str:
        """Metrics label for a URL: api, oai, rss or other (the RSS base is checked last:
        in tests all three share one host)."""
        s = self.settings
        for name, base in (("api", s.arxiv_api_url), ("oai", s.arxiv_oai_url)):
            if url.startswith(base):
                return name
        return "rss" if url.startswith(s.arxiv_rss_url) else "other"

    async def get(
        self,
        url: str,
        params: Params | None = None,
        *,
        source: str | None = None,
        max_redirects: int = MAX_REDIRECTS,
        max_bytes: int | None = None,
    ) -> bytes:
        """GET `url` politely and return the body; see the module docstring for the policy.
        A body over `max_bytes` raises UnusablePdf (only PDFs are capped)."""
        source = source or self.source_of(url)
        full_url = str(httpx.URL(url, params=params)) if params else url

        def count(exc: BaseException | None, reason: str) -> None:
            RETRIES.labels(source, _label(exc) if exc is not None else "unknown").inc()

        try:
            return await call_with_retries(
                lambda _n: self._attempt(url, params, source, max_redirects, max_bytes),
                transient=TRANSIENT,
                attempts=self.settings.arxiv_max_attempts,
                wait=self._wait,
                before_sleep=log_before_sleep(
                    log, f"arXiv GET {full_url}", self.settings.arxiv_max_attempts, _describe, count
                ),
                sleep=self._sleep,
            )
        except TRANSIENT as exc:
            retry_after = getattr(exc, "retry_after", None)
            raise UpstreamUnavailable(full_url, _describe(exc), retry_after) from exc

    async def fetch_pdf(self, url: str) -> bytes:
        """A paper's PDF (for its thumbnail), at most MAX_PDF_BYTES, through the limiter and
        the retry policy. Raises UnusablePdf for a body too large or not a PDF, and the
        errors of `get`."""
        data = await self.get(
            url, source="pdf", max_redirects=PDF_MAX_REDIRECTS, max_bytes=MAX_PDF_BYTES
        )
        if not data.startswith(b"%PDF"):
            raise UnusablePdf(url, "not a PDF")
        return data

    async def _attempt(
        self,
        url: str,
        params: Params | None,
        source: str,
        max_redirects: int,
        max_bytes: int | None,
    ) -> bytes:
        """One attempt: each redirect hop is its own request, so each takes its own slot."""
        request = self.http.build_request("GET", url, params=params)
        for _ in range(max_redirects + 1):
            asked = time.monotonic()
            async with self.limiter.slot():
                started = time.monotonic()
                WAIT_SECONDS.labels(source).observe(started - asked)
                try:
                    response = await self.http.send(request, follow_redirects=False, stream=True)
                    try:
                        content = await _read(response, max_bytes)
                    finally:
                        await response.aclose()
                except Exception as exc:
                    REQUESTS.labels(source, _label(exc)).inc()
                    raise
                finally:
                    REQUEST_SECONDS.labels(source).observe(time.monotonic() - started)
            if response.next_request is not None:  # a redirect we follow ourselves
                REQUESTS.labels(source, str(response.status_code)).inc()
                request = response.next_request
                continue
            try:
                return self._body(response, content)
            finally:
                label = "truncated" if _is_short(response) else str(response.status_code)
                REQUESTS.labels(source, label).inc()
        raise UpstreamHTTPError(response.status_code, str(request.url), "too many redirects")

    def _body(self, response: httpx.Response, content: bytes) -> bytes:
        status = response.status_code
        url = str(response.url)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise RetryableStatus(status, url, retry_after)
        if not 200 <= status < 300:
            raise UpstreamHTTPError(status, url, _excerpt(response, content))
        if _is_short(response):
            expected = int(response.headers["Content-Length"])
            raise TruncatedBody(url, expected, response.num_bytes_downloaded)
        return content

    # -- parsed endpoints -----------------------------------------------------------------

    async def rss(self, categories: Sequence[str]) -> ParsedPage:
        """Today's announcement feed for `categories` (RSS 2.0), parsed."""
        cats = [c.strip() for c in categories if c.strip()]
        if not cats:
            raise ValueError("rss() needs at least one category")
        bad = [c for c in cats if not _CATEGORY.fullmatch(c)]
        if bad:
            raise ValueError(f"not a category or archive id: {bad!r}")
        url = f"{self.settings.arxiv_rss_url.rstrip('/')}/rss/{'+'.join(cats)}"
        return parse_feed(await self.get(url, source="rss"), url)

    async def query_ids(self, ids: Sequence[str]) -> ParsedPage:
        """Metadata for `ids` from the query API (a `vN` asks for that version), in requests
        of at most API_ID_CHUNK ids, merged into one page. Unknown ids are simply absent."""
        unique = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
        merged = ParsedPage(total=0, start=0)
        url = self.settings.arxiv_api_url
        for at in range(0, len(unique), API_ID_CHUNK):
            chunk = unique[at : at + API_ID_CHUNK]
            params: dict[str, str | int] = {
                "id_list": ",".join(chunk),
                "start": 0,
                "max_results": len(chunk),
            }
            data = await self.get(url, params, source="api")
            page = parse_api_response(data, str(httpx.URL(url, params=params)))
            merged.papers.extend(page.papers)
            merged.errors.extend(page.errors)
            merged.total = (merged.total or 0) + (
                page.total if page.total is not None else len(page.papers)
            )
        return merged

    async def list_records(
        self,
        *,
        set_spec: str | None = None,
        from_: date | None = None,
        until: date | None = None,
        token: str | None = None,
        metadata_prefix: str = "arXivRaw",
    ) -> OaiPage:
        """One OAI-PMH ListRecords page. With a resumption token only `verb` and the token
        are sent (OAI-PMH forbids the other arguments then), so the filters are ignored."""
        params: dict[str, str]
        if token:
            params = {"verb": "ListRecords", "resumptionToken": token}
        else:
            params = {"verb": "ListRecords", "metadataPrefix": metadata_prefix}
            if set_spec:
                params["set"] = set_spec
            if from_ is not None:
                params["from"] = from_.isoformat()
            if until is not None:
                params["until"] = until.isoformat()
        url = self.settings.arxiv_oai_url
        data = await self.get(url, params, source="oai")
        return parse_oai_pmh(data, str(httpx.URL(url, params=params)))

    async def harvest(
        self,
        *,
        set_spec: str | None = None,
        from_: date | None = None,
        until: date | None = None,
        token: str | None = None,
        metadata_prefix: str = "arXivRaw",
    ) -> AsyncIterator[OaiPage]:
        """ListRecords pages, following resumption tokens to the end of the list.

        A response that hands back the very token it was asked with is the previous page
        served again: it is skipped and the token asked again, at most `arxiv_max_attempts`
        times in a row before giving up with UpstreamUnavailable."""
        filters = {"set_spec": set_spec, "from_": from_, "until": until}
        while True:
            page = await self._page_after(token, metadata_prefix, **filters)
            yield page
            token = page.resumption_token
            if not token:
                return

    async def _page_after(
        self,
        token: str | None,
        metadata_prefix: str,
        **filters: Any,
    ) -> OaiPage:
        """The ListRecords page for `token`, asked again (at once) while it is the page before."""

        async def attempt(_n: int) -> OaiPage:
            page = await self.list_records(token=token, metadata_prefix=metadata_prefix, **filters)
            if token is not None and page.resumption_token == token:
                raise RepeatedPage(token)
            return page

        def repeated(state: RetryCallState) -> None:
            log.warning(
                "OAI-PMH served the page before token %s again (%d)", token, state.attempt_number
            )

        attempts = self.settings.arxiv_max_attempts
        try:
            return await call_with_retries(
                attempt,
                transient=(RepeatedPage,),
                attempts=attempts,
                wait=wait_none(),
                before_sleep=repeated,
                sleep=self._sleep,
            )
        except RepeatedPage as exc:
            log.warning("OAI-PMH served the page before token %s again (%d)", token, attempts)
            raise UpstreamUnavailable(self.settings.arxiv_oai_url, str(exc)) from exc


async def _read(response: httpx.Response, max_bytes: int | None) -> bytes:
    """The whole body, or UnusablePdf as soon as it grows past `max_bytes`."""
    if max_bytes is None:
        return await response.aread()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise UnusablePdf(str(response.url), f"larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_short(response: httpx.Response) -> bool:
    """True when fewer raw bytes arrived than Content-Length announced."""
    declared = response.headers.get("Content-Length", "")
    return declared.isdigit() and response.num_bytes_downloaded < int(declared)
