"""Cross-cutting HTTP behaviour, installed by `install(app, settings)`.

- security headers on every response (a CSP without inline script, nosniff, referrer policy,
  no framing);
- CORS on `/api/` paths only, for the origins in `settings.cors_origins` (none by default);
- `X-Request-ID`: a well-formed incoming id is echoed, otherwise one is generated;
- a one-line JSON access log per request (logger `app.web.middleware`);
- Prometheus metrics at `/metrics`: requests by route template and status, latency by route;
- a per-client token-bucket rate limit on `/api/`, `/search` and `/arxiv/{id}/faq`:
  in-process by default, shared through Redis when `settings.redis_url` is set (falls back
  to in-process while Redis is unreachable). Over the limit: 429 with the API's error
  shape and `Retry-After`.

Settings read with `getattr` and a default, so this works before they exist:
`cors_origins` ([]), `rate_limit_per_minute` (120; 0 disables), `rate_limit_burst` (60).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.middleware.cors import CORSMiddleware

from app.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages load their scripts from a CDN and start them inline.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
OTHER_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
]
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), *OTHER_SECURITY_HEADERS]
DOCS_SECURITY_HEADERS = [(b"content-security-policy", DOCS_CSP.encode()), *OTHER_SECURITY_HEADERS]
# Request bodies on /api/ larger than this (by Content-Length) are refused with 413.
MAX_API_BODY = 64 * 1024
# Uploads that enforce their own, larger limit (PAPERSHELF_ML_MAX_IMAGE_BYTES).
OWN_BODY_LIMIT = frozenset({"/api/v1/ml/tokenize"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
METRICS_PATH = "/metrics"
UNMATCHED = "<unmatched>"


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
                log.warning("rate limiter: Redis unavailable (%s), limiting per process", exc)
                self._warned = True
            return await self.fallback.take(key)


def _rate_limited_path(path: str) -> bool:
    return (
        path.startswith("/api/")
        or path == "/search"
        or path.startswith("/search/")
        # The FAQ page's no-JavaScript form queues LLM work, like the API's POST.
        or (path.startswith("/arxiv/") and path.endswith("/faq"))
    )


def _client_key(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


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
    """Request id, security headers, access log, metrics, /metrics and rate limiting."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        limiter: LocalBuckets | RedisBuckets | None,
        docs_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        request_id = ""
        body_size = 0
        for name, value in scope.get("headers", []):
            if name == b"x-request-id" and not request_id:
                candidate = value.decode("latin-1")
                if _REQUEST_ID.fullmatch(candidate):
                    request_id = candidate
            elif name == b"content-length":
                body_size = int(value) if value.isdigit() else MAX_API_BODY + 1
        request_id = request_id or uuid.uuid4().hex
        security = DOCS_SECURITY_HEADERS if path in self.docs_paths else SECURITY_HEADERS
        extra = [*security, (b"x-request-id", request_id.encode())]
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in extra if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        route = UNMATCHED
        try:
            if path == METRICS_PATH:
                route = METRICS_PATH
                await self._serve_metrics(send_wrapper)
            elif (
                self.limiter is not None
                and method != "OPTIONS"
                and _rate_limited_path(path)
                and (wait := await self.limiter.take(_client_key(scope))) > 0
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
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info(
                json.dumps(
                    {
                        "method": method,
                        "route": route,
                        "path": path,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                        "request_id": request_id,
                        "client": _client_key(scope),
                    },
                    ensure_ascii=False,
                )
            )

    async def _serve_metrics(self, send: Send) -> None:
        data = generate_latest(self.metrics.registry)
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
    app.add_middleware(
        PapershelfMiddleware,
        metrics=get_metrics(registry),
        limiter=make_limiter(settings),
        docs_paths=frozenset(
            p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p
        ),
    )
    # Added last = outermost: API responses the inner layer makes itself (429, 500) carry
    # the CORS headers too, so a browser client can read them.
    if origins:
        app.add_middleware(ApiOnlyCORS, origins=origins)
    app.state.papershelf_middleware = True
