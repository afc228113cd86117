"""Cross-cutting HTTP behaviour, installed by `install(app, settings)`.

- security headers on every response (a CSP without inline script, nosniff, referrer policy,
  no framing);
- CORS on `/api/` paths only, for the origins in `settings.cors_origins` (none by default);
- `X-Request-ID`: a well-formed incoming id is echoed, otherwise one is generated;
- requests whose Host is not allowed (`allowed_hosts`) refused with 400 before any route,
  so no link is built from a forged Host;
- a one-line JSON access log per request (logger `app.web.middleware`; `logging_config()`
  is what `papershelf serve` gives uvicorn so that it reaches stderr);
- Prometheus metrics at `/metrics`, behind the admin bearer token: requests by route
  template and status, latency by route;
- gzip for compressible responses (HTML, JSON, feeds) to clients that accept it; the
  compressed representation carries the weak form of the body's ETag;
- a per-client token-bucket rate limit on `/api/`, `/search` and `/arxiv/{id}/faq`:
  in-process by default, shared through Redis when `settings.redis_url` is set (falls back
  to in-process while Redis is unreachable). Over the limit: 429 with the API's error
  shape and `Retry-After`.

The client address (rate limits, the access log, look-up budgets) is `client_address`: the
TCP peer, or, when the peer is one of `settings.trusted_proxies`, the nearest address in
`X-Forwarded-For` that is not a trusted proxy.

Settings read with `getattr` and a default, so this works before they exist:
`cors_origins` ([]), `rate_limit_per_minute` (120; 0 disables), `rate_limit_burst` (60).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import FastAPI, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware, GZipResponder

from app.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# This module's logger carries the access log, one JSON line per request; the rate
# limiter's own notes go to a child, so the access log holds requests only.
log = logging.getLogger(__name__)
limiter_log = log.getChild("ratelimit")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
OTHER_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
]
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), *OTHER_SECURITY_HEADERS]
# Request bodies on /api/ larger than this (by Content-Length) are refused with 413.
MAX_API_BODY = 64 * 1024
# Uploads that enforce their own, larger limit (PAPERSHELF_ML_MAX_IMAGE_BYTES).
OWN_BODY_LIMIT = frozenset({"/api/v1/ml/tokenize"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
METRICS_PATH = "/metrics"
UNMATCHED = "<unmatched>"
# Probes and scrapers address the process by whatever name they have (a pod IP…); these
# answers hold no links, so they skip the Host check.
HOST_CHECK_EXEMPT = frozenset({"/healthz", "/readyz", METRICS_PATH})
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# Bodies smaller than this are sent as they are (gzip's overhead eats the gain). Level 4:
# within a few per cent of level 9's size at a third of level 6's CPU time (bench.web).
GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 4
# Compressed bodies of responses with a strong ETag, kept per process (bytes, all entries).
GZIP_CACHE_BYTES = 32 * 1024 * 1024
# Bounds of what the middleware remembers per process: Host headers seen, metric series.
HOST_VERDICTS_KEPT = 256
SERIES_KEPT = 4096


# --- the client address -----------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(source: Request | Scope, settings: Settings) -> str:
    """The client's address for rate limits, logs and budgets: the TCP peer, unless the peer
    is a trusted proxy (`PAPERSHELF_TRUSTED_PROXIES`); then `X-Forwarded-For` is read from
    the right (each proxy appends the address it saw) and the first hop that is not itself
    a trusted proxy is the client. Without trusted proxies the header is ignored, so a
    client cannot pick its own bucket."""
    scope = source.scope if isinstance(source, Request) else source
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    networks = _networks(tuple(getattr(settings, "trusted_proxies", ()) or ()))
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [
        hop.strip()
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:  # a proxy wrote something that is not an address
                return peer
    # Every hop a trusted proxy (an internal client): the first one is the origin.
    return hops[0] if hops else peer


# --- allowed hosts ----------------------------------------------------------------------


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Lower-case host names (no port) the site answers; `*` allows any."""
    configured = list(getattr(settings, "allowed_hosts", []) or [])
    if configured:
        return frozenset(h.strip().lower().strip("[]") for h in configured)
    hosts = set(LOCAL_HOSTS)
    public = getattr(settings, "public_url", None)
    if public and (name := urlsplit(public).hostname):
        hosts.add(name.lower())
    return frozenset(hosts)


def _host_name(header: str) -> str:
    """`example.org:8000` → `example.org`; `[::1]:8000` → `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() else header


# --- metrics ------------------------------------------------------------------------------


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "papershelf_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "papershelf_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.rate_limited = Counter(
            "papershelf_http_rate_limited_total",
            "Requests answered 429 by the rate limiter.",
            registry=registry,
        )


_METRICS: dict[int, Metrics] = {}


def get_metrics(registry: CollectorRegistry = REGISTRY) -> Metrics:
    """One set of collectors per registry (registering twice would raise)."""
    metrics = _METRICS.get(id(registry))
    if metrics is None:
        metrics = _METRICS[id(registry)] = Metrics(registry)
    return metrics


# --- rate limiting --------------------------------------------------------------------------


class LocalBuckets:
    """Token buckets in this process: `rate` tokens per second, at most `burst` saved."""

    def __init__(self, rate: float, burst: float, max_clients: int = 50_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            self._prune(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= self.max_clients:
            return
        # Buckets that have refilled are indistinguishable from new ones: drop them.
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        if len(self._buckets) > self.max_clients:  # still too many: forget the oldest half
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1][1])[self.max_clients // 2 :]
            self._buckets = dict(keep)


# KEYS[1] bucket; ARGV rate, burst. Returns the wait in ms (0: allowed). The clock is the
# Redis server's, so hosts need not agree (TIME in scripts: effects replication, Redis 5+).
_REDIS_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
if now > last then tokens = math.min(burst, tokens + (now - last) * rate) end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 't', tokens, 'ts', math.max(now, last))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


class RedisBuckets:
    """The same buckets shared by every process through Redis (one Lua script call per
    request). While Redis fails, the local buckets decide, so an outage never blocks the
    site."""

    def __init__(self, url: str, rate: float, burst: float, prefix: str = "papershelf:rl:"):
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.client.register_script(_REDIS_BUCKET)
        self.rate = rate
        self.burst = burst
        self.prefix = prefix
        self.fallback = LocalBuckets(rate, burst)
        self._warned = False

    async def take(self, key: str) -> float:
        try:
            wait_ms = await self.script(keys=[self.prefix + key], args=[self.rate, self.burst])
            self._warned = False
            return float(wait_ms) / 1000
        except Exception as exc:  # any Redis trouble: decide locally
            if not self._warned:
                limiter_log.warning(
                    "rate limiter: Redis unavailable (%s), limiting per process", exc
                )
                self._warned = True
            return await self.fallback.take(key)


def _rate_limited_path(path: str) -> bool:
    return (
        path.startswith("/api/")
        or path == "/search"
        or path.startswith("/search/")
        # The FAQ page's no-JavaScript form queues LLM work, like the API's POST.
        or (path.startswith("/arxiv/") and path.endswith("/faq"))
        # An export may run a whole search or read thousands of papers, like /search.
        or path.startswith("/export.")
    )


# --- the middleware ---------------------------------------------------------------------


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


async def _send_error(
    send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """The API's error shape (`app.web.errors`), sent from below the app: the answers this
    layer makes itself come before any route or response class."""
    data = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class PapershelfMiddleware:
    """Request id, security headers, Host check, access log, metrics, /metrics and rate
    limiting."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        limiter: LocalBuckets | RedisBuckets | None,
        settings: Settings,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        self.settings = settings
        self.hosts = allowed_hosts(settings)
        self.admin_token: str | None = getattr(settings, "admin_token", None)
        self._proxied = bool(getattr(settings, "trusted_proxies", ()) or ())
        # What every request would otherwise work out again: a Host header's verdict, and
        # the metric series (labels() validates and locks on each call).
        self._host_verdicts: dict[bytes, bool] = {}
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _host_allowed(self, scope: Scope) -> bool:
        if "*" in self.hosts:
            return True
        for name, value in scope.get("headers", []):
            if name == b"host":
                verdict = self._host_verdicts.get(value)
                if verdict is None:
                    verdict = _host_name(value.decode("latin-1")) in self.hosts
                    if len(self._host_verdicts) >= HOST_VERDICTS_KEPT:
                        self._host_verdicts.clear()
                    self._host_verdicts[value] = verdict
                return verdict
        return False  # HTTP/1.1 requires a Host header

    def _observe(self, route: str, method: str, status: int, elapsed: float) -> None:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.metrics.requests.labels(route, method, str(status)),
                self.metrics.latency.labels(route),
            )
            if len(self._series) >= SERIES_KEPT:
                self._series.clear()
            self._series[key] = series
        series[0].inc()
        series[1].observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        request_id = ""
        body_size = 0
        authorization = b""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id" and not request_id:
                candidate = value.decode("latin-1")
                if _REQUEST_ID.fullmatch(candidate):
                    request_id = candidate
            elif name == b"content-length":
                body_size = int(value) if value.isdigit() else MAX_API_BODY + 1
            elif name == b"authorization":
                authorization = value
        request_id = request_id or uuid.uuid4().hex
        if self._proxied:
            client = client_address(scope, self.settings)
        else:  # no trusted proxy: the peer, as client_address would say
            peer = scope.get("client")
            client = str(peer[0]) if peer else "unknown"
        extra = [*SECURITY_HEADERS, (b"x-request-id", request_id.encode())]
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                message = {**message, "headers": _with_extra(message.get("headers", []), extra)}
            await send(message)

        route = UNMATCHED
        try:
            if path not in HOST_CHECK_EXEMPT and not self._host_allowed(scope):
                route = "<bad-host>"
                await _send_error(
                    send_wrapper,
                    400,
                    "bad_host",
                    "this site does not answer to that Host (see PAPERSHELF_ALLOWED_HOSTS)",
                    [],
                )
            elif path == METRICS_PATH:
                route = METRICS_PATH
                await self._serve_metrics(send_wrapper, authorization)
            elif (
                self.limiter is not None
                and method != "OPTIONS"
                and _rate_limited_path(path)
                and (wait := await self.limiter.take(client)) > 0
            ):
                self.metrics.rate_limited.inc()
                route = "<rate-limited>"
                retry = max(1, math.ceil(wait))
                await _send_error(
                    send_wrapper,
                    429,
                    "rate_limited",
                    f"too many requests; retry in {retry} s",
                    [(b"retry-after", str(retry).encode())],
                )
            elif (
                body_size > MAX_API_BODY and path.startswith("/api/") and path not in OWN_BODY_LIMIT
            ):
                route = "<too-large>"
                await _send_error(
                    send_wrapper,
                    413,
                    "too_large",
                    f"request bodies are limited to {MAX_API_BODY} bytes",
                    [],
                )
            else:
                await self.app(scope, receive, send_wrapper)
                route = _route_template(scope)
        except Exception:
            route = _route_template(scope)
            if not started:
                await _send_error(send_wrapper, 500, "internal_error", "internal server error", [])
            raise
        finally:
            elapsed = time.perf_counter() - start
            self._observe(route, method, status, elapsed)
            if log.isEnabledFor(logging.INFO):
                line = {
                    "method": method,
                    "route": route,
                    "path": path,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                    "client": client,
                }
                # makeRecord + handle is log.info without the caller's frame lookup, which
                # the access line does not show and which costs more than the rest of it.
                log.handle(
                    log.makeRecord(
                        log.name,
                        logging.INFO,
                        __file__,
                        0,
                        _json_line(line),
                        (),
                        None,
                        extra={ACCESS_MARK: True},
                    )
                )

    async def _serve_metrics(self, send: Send, authorization: bytes) -> None:
        """Prometheus text for a scraper holding the admin token; 403 while none is set (as
        the admin API), 401 otherwise."""
        if not self.admin_token:
            await _send_error(
                send,
                403,
                "admin_disabled",
                "metrics need an admin token: set PAPERSHELF_ADMIN_TOKEN",
                [],
            )
            return
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(
            token.strip(), self.admin_token.encode()
        ):
            await _send_error(
                send,
                401,
                "unauthorized",
                "metrics need the bearer admin token",
                [(b"www-authenticate", b'Bearer realm="papershelf"')],
            )
            return
        data = generate_latest(_scrape_registry(self.metrics.registry))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", CONTENT_TYPE_LATEST.encode()),
                    (b"content-length", str(len(data)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


def _scrape_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """What a scrape reports: under `papershelf serve --workers N` (which sets
    PROMETHEUS_MULTIPROC_DIR) every process writes its samples to that directory and a
    scrape sums them all, whichever process answers; otherwise this process's registry."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory or registry is not REGISTRY:
        return registry
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined, path=directory)
    return combined


def _json_line(entry: dict[str, Any]) -> str:
    try:
        return orjson.dumps(entry).decode()
    except orjson.JSONEncodeError:  # text orjson refuses (a lone surrogate): the slow way
        return json.dumps(entry, ensure_ascii=False)


def _with_extra(
    headers: Iterable[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """A response's headers plus those of `extra` it does not set itself (security headers,
    the request id), in a new list. A gzip body is another byte sequence than the one its
    strong ETag names (RFC 9110 §8.8.1): it gets the weak form of the same tag.
    Revalidation compares weakly (`app.web.http.etag_matches`), so either form gets its
    304."""
    names = {k.lower() for k, _ in headers}
    if b"content-encoding" in names:
        out = [
            (k, b"W/" + v) if k.lower() == b"etag" and v.startswith(b'"') else (k, v)
            for k, v in headers
        ]
    else:
        out = list(headers)
    out.extend(kv for kv in extra if kv[0] not in names)
    return out


# --- compression -------------------------------------------------------------------------


class GzipCache:
    """Compressed bodies by (path, query, strong ETag), least recently used dropped first:
    a strong ETag names one byte sequence, so its gzip form is made once per process (a
    400 kB listing costs milliseconds to compress, and is asked for again and again)."""

    def __init__(self, max_bytes: int = GZIP_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: dict[tuple[str, bytes, str], bytes] = {}

    def get(self, key: tuple[str, bytes, str]) -> bytes | None:
        body = self._entries.pop(key, None)
        if body is not None:
            self._entries[key] = body  # most recently used last
        return body

    def put(self, key: tuple[str, bytes, str], body: bytes) -> None:
        if len(body) > self.max_bytes // 8 or key in self._entries:
            return
        self._entries[key] = body
        self.size += len(body)
        while self.size > self.max_bytes:
            oldest = next(iter(self._entries))
            self.size -= len(self._entries.pop(oldest))


class _CachingGZipResponder(GZipResponder):
    def __init__(self, app: ASGIApp, cache: GzipCache, key: tuple[str, bytes], **kw: Any):
        super().__init__(app, **kw)
        self.cache = cache
        self.key = key

    async def apply_compression(self, body: bytes, *, more_body: bool) -> bytes:
        # A whole body in one message (no chunk compressed before it) with a strong ETag.
        if more_body or self._compressor is not None:
            return await super().apply_compression(body, more_body=more_body)
        etag = Headers(raw=self.initial_message.get("headers", [])).get("etag", "")
        if not etag.startswith('"'):
            return await super().apply_compression(body, more_body=False)
        key = (*self.key, etag)
        if (hit := self.cache.get(key)) is not None:
            return hit
        out = await super().apply_compression(body, more_body=False)
        self.cache.put(key, out)
        return out


class CachingGZipMiddleware(GZipMiddleware):
    """Starlette's gzip (skips small bodies, 304s, images, event streams and bodies that
    already carry a Content-Encoding; sets Vary), with the compressed form of responses
    that carry a strong ETag cached (`GzipCache`)."""

    def __init__(
        self,
        app: ASGIApp,
        minimum_size: int = GZIP_MIN_BYTES,
        compresslevel: int = GZIP_LEVEL,
        cache: GzipCache | None = None,
    ) -> None:
        super().__init__(app, minimum_size=minimum_size, compresslevel=compresslevel)
        self.cache = cache or GzipCache()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _accepts_gzip(scope):
            responder = _CachingGZipResponder(
                self.app,
                self.cache,
                (scope.get("path", ""), scope.get("query_string", b"")),
                minimum_size=self.minimum_size,
                compresslevel=self.compresslevel,
                thread_minimum_size=self.thread_minimum_size,
                exclude_content_types=self.exclude_content_types,
            )
            await responder(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._identity(scope, receive, send)

    async def _identity(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Uncompressed, with `Vary: Accept-Encoding` where the body could have been
        compressed: what Starlette's identity responder sends, without building its
        header views for every response."""
        held: Message | None = None

        async def send_identity(message: Message) -> None:
            nonlocal held
            kind = message["type"]
            if kind == "http.response.start":
                if self._compressible(message):
                    held = message  # until the body says whether it is large enough
                    return
            elif held is not None and kind in ("http.response.body", "http.response.pathsend"):
                start, held = held, None
                if kind == "http.response.body" and (
                    message.get("more_body", False)
                    or len(message.get("body", b"")) >= self.minimum_size
                ):
                    start = {**start, "headers": _with_vary(start.get("headers", []))}
                await send(start)
            await send(message)

        await self.app(scope, receive, send_identity)

    def _compressible(self, start: Message) -> bool:
        """Whether gzip would have compressed this response (its body size aside): not a
        partial response, not encoded already, not an excluded media type."""
        if start["status"] == 206:
            return False
        media_type = ""
        for name, value in start.get("headers", []):
            lower = name.lower()
            if lower == b"content-encoding":
                return False
            if lower == b"content-type" and not media_type:
                media_type = value.decode("latin-1").partition(";")[0].strip().lower()
        excluded = self.exclude_content_types
        return not (
            media_type in excluded
            or media_type.partition("/")[0] + "/*" in excluded
            or (media_type.startswith("application/grpc+") and "application/grpc" in excluded)
        )


def _with_vary(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`Accept-Encoding` added to the response's `Vary` (one header, as Starlette's)."""
    out = list(headers)
    for i, (name, value) in enumerate(out):
        if name.lower() == b"vary":
            out[i] = (b"vary", value + b", Accept-Encoding")
            out[i + 1 :] = [kv for kv in out[i + 1 :] if kv[0].lower() != b"vary"]
            return out
    out.append((b"vary", b"Accept-Encoding"))
    return out


def _accepts_gzip(scope: Scope) -> bool:
    """`gzip` listed in Accept-Encoding, and not refused with `q=0`."""
    for name, value in scope.get("headers", []):
        if name == b"accept-encoding":
            for part in value.decode("latin-1").lower().split(","):
                coding, _, params = part.partition(";")
                if coding.strip() == "gzip":
                    q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
                    try:
                        return float(q) > 0
                    except ValueError:
                        return False
    return False


# --- the access log in the server process ---------------------------------------------------

ACCESS_MARK = "papershelf_access"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: access lines as they are, other records wrapped."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, ACCESS_MARK, False):
            return record.getMessage()
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """`logging.config.dictConfig` for the web process (handed to uvicorn, which applies it
    in the process that serves, reloader included): the access log as JSON lines on stderr,
    uvicorn's own per-request line off (ours replaces it), everything else on stderr."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {
        **LOGGING_CONFIG,
        "formatters": {
            **LOGGING_CONFIG["formatters"],
            "papershelf_json": {"()": f"{__name__}.JsonLogFormatter"},
            "papershelf_plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "handlers": {
            **LOGGING_CONFIG["handlers"],
            "papershelf_access": {
                "class": "logging.StreamHandler",
                "formatter": "papershelf_json",
                "stream": "ext://sys.stderr",
            },
            "papershelf_plain": {
                "class": "logging.StreamHandler",
                "formatter": "papershelf_plain",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            **LOGGING_CONFIG["loggers"],
            __name__: {"handlers": ["papershelf_access"], "level": level, "propagate": False},
            "app": {"handlers": ["papershelf_plain"], "level": level, "propagate": False},
        },
    }
    return config


class ApiOnlyCORS:
    """Starlette's CORS middleware, applied to `/api/` paths only."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"],
            expose_headers=["ETag", "Retry-After", "X-Request-ID"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/api/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def make_limiter(settings: Settings) -> LocalBuckets | RedisBuckets | None:
    per_minute = float(getattr(settings, "rate_limit_per_minute", 120) or 0)
    if per_minute <= 0:
        return None
    burst = float(getattr(settings, "rate_limit_burst", 60) or 1)
    rate = per_minute / 60
    redis_url = getattr(settings, "redis_url", None)
    if redis_url:
        return RedisBuckets(redis_url, rate, burst)
    return LocalBuckets(rate, burst)


def install(app: FastAPI, settings: Settings, *, registry: CollectorRegistry = REGISTRY) -> None:
    """Add the middleware to `app` (call once, before the app starts)."""
    if getattr(app.state, "papershelf_middleware", False):
        return
    origins = list(getattr(settings, "cors_origins", []) or [])
    # Innermost: compresses what the routes answer; the layer around it sees the encoded
    # response (and weakens its ETag). Starlette's skips 304s, small bodies, bodies that
    # already carry a Content-Encoding, images and event streams, and sets Vary.
    app.add_middleware(CachingGZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=GZIP_LEVEL)
    app.add_middleware(
        PapershelfMiddleware,
        metrics=get_metrics(registry),
        limiter=make_limiter(settings),
        settings=settings,
    )
    # Added last = outermost: API responses the inner layer makes itself (429, 500) carry
    # the CORS headers too, so a browser client can read them.
    if origins:
        app.add_middleware(ApiOnlyCORS, origins=origins)
    app.state.papershelf_middleware = True
