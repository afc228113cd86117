"""Redis connections for arq: the settings workers and the CLI ride out a restart with, and
the quick ones a web request uses so that it never hangs on a dead Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace

import redis.backoff
import redis.exceptions
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio.retry import Retry as AsyncRetry

from app.settings import Settings

# A web request's budget for connecting to Redis and for each command it sends.
QUICK_TIMEOUT_S = 3
# What a dead or unreachable Redis raises through redis-py and asyncio.
REDIS_ERRORS = (redis.exceptions.RedisError, OSError, TimeoutError)
NO_REDIS = "no Redis is configured (PAPERSHELF_REDIS_URL)"


class QueueUnavailable(RuntimeError):
    """No Redis is configured, or it did not answer."""


def redis_settings(url: str | None) -> RedisSettings:
    rs = RedisSettings.from_dsn(url or "redis://127.0.0.1:6379/0")
    # Ride out a Redis restart instead of dying: connecting is retried for about a minute,
    # and every command retries on connection errors with back-off.
    rs.conn_retries = 30
    rs.conn_retry_delay = 2
    rs.retry_on_timeout = True
    rs.retry_on_error = [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    rs.retry = AsyncRetry(redis.backoff.ExponentialBackoff(cap=5.0, base=0.2), 20)
    return rs


def quick_redis_settings(url: str | None) -> RedisSettings:
    """For web requests, which must not hang on a dead Redis: no reconnect attempts, short
    timeouts (callers turn the error into QueueUnavailable)."""
    return replace(
        redis_settings(url),
        conn_timeout=QUICK_TIMEOUT_S,
        conn_retries=0,
        retry=None,
        retry_on_timeout=False,
        retry_on_error=None,
    )


@asynccontextmanager
async def open_pool(
    settings: Settings,
    *,
    quick: bool = False,
    error: type[QueueUnavailable] = QueueUnavailable,
    no_redis: str = NO_REDIS,
) -> AsyncIterator[ArqRedis]:
    """An arq pool from outside any worker. `quick` (web requests) never hangs on a dead
    Redis: no reconnect attempts, short timeouts. A missing or dead Redis raises `error` (a
    QueueUnavailable), with `no_redis` as the message for the first."""
    if not settings.redis_url:
        raise error(no_redis)
    rs = quick_redis_settings(settings.redis_url) if quick else redis_settings(settings.redis_url)
    try:
        pool = await asyncio.wait_for(create_pool(rs), QUICK_TIMEOUT_S + 1 if quick else None)
    except REDIS_ERRORS as exc:
        raise error(f"Redis is unreachable ({type(exc).__name__})") from exc
    try:
        yield pool
    finally:
        await pool.aclose()


def quick_pool(
    settings: Settings,
    *,
    error: type[QueueUnavailable] = QueueUnavailable,
    no_redis: str = NO_REDIS,
) -> AbstractAsyncContextManager[ArqRedis]:
    """`open_pool` for one web request."""
    return open_pool(settings, quick=True, error=error, no_redis=no_redis)
