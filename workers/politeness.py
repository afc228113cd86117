"""One politeness limiter for arXiv, shared through Redis by every worker process and replica.

arXiv asks for at most one request every `min_interval` seconds and at most `max_connections`
connections at a time *per deployment*, so the state lives in Redis, and each decision is one
Lua script (atomic: no two processes can both see "free"). The script reads the clock with
Redis `TIME`, so machines with skewed clocks still agree on the spacing.

State, under `key` (default `DEPLOYMENT_KEY`, "papershelf:arxiv"; the hash tag keeps both keys
in one cluster slot):
* `{key}:next`   — the earliest Redis time (µs) the next request may start;
* `{key}:leases` — a sorted set of in-flight requests, member = a unique token, score = the
  lease's expiry (µs). Expired leases are dropped before every decision, so a holder that was
  SIGKILLed frees its connection after `lease_ttl`. A live holder renews its lease every
  `lease_ttl / 3`, so a request slower than `lease_ttl` never loses its lease.

Spacing is between request *starts* (a slow response does not push the next start back).
`min_interval=0` disables the spacing and keeps the connection cap. Needs Redis >= 5
(effects replication, so a script may write after calling TIME).

`LocalRateLimiter` keeps the same two rules inside one process, for work run without Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from workers import stopping

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.settings import Settings

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]

DEPLOYMENT_KEY = "papershelf:arxiv"  # every process of a deployment shares this one


class Limiter(Protocol):
    """What the arXiv client needs: `async with limiter.slot():` around each request."""

    def slot(self) -> AbstractAsyncContextManager[None]: ...


# KEYS: next, leases. ARGV: interval_us, max_connections, ttl_us, token, poll_us.
# Returns {1, 0} when the lease was granted, else {0, µs worth waiting before asking again}.
# Numbers are written with %.0f: Lua's default number formatting would round µs timestamps.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt > now then
  return {0, nxt - now}
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local wait = tonumber(ARGV[5])
  local expiry = tonumber(first[2]) - now
  if expiry < wait then wait = expiry end
  return {0, wait}
end
redis.call('ZADD', KEYS[2], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[4])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', math.floor(tonumber(last[2]) / 1000) + 1))
local interval = tonumber(ARGV[1])
if interval > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', now + interval),
             'PX', string.format('%.0f', math.floor(interval / 1000) + 1))
end
return {1, 0}
"""

# KEYS: leases. ARGV: ttl_us, token. Extends a lease still held; 0 when it was already lost.
_RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', now + tonumber(ARGV[1])), ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.floor(tonumber(last[2]) / 1000) + 1))
return 1
"""


class RedisRateLimiter:
    """`async with limiter.slot(): ...` — wait for a start slot and a connection lease."""

    def __init__(
        self,
        redis: Redis,
        *,
        key: str = DEPLOYMENT_KEY,
        min_interval: float,
        max_connections: int = 1,
        lease_ttl: float = 90.0,
        sleep: Sleep = stopping.sleep,
        poll_interval: float = 0.05,
        max_sleep: float = 1.0,
    ) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0, got {min_interval}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl must be > 0, got {lease_ttl}")
        self.redis = redis
        self.key = key
        self.min_interval = float(min_interval)
        self.max_connections = int(max_connections)
        self.lease_ttl = float(lease_ttl)
        self.next_key = f"{{{key}}}:next"
        self.leases_key = f"{{{key}}}:leases"
        self._sleep = sleep
        self._poll_us = max(1, round(poll_interval * 1e6))
        self._max_sleep = max_sleep
        self._acquire_script = redis.register_script(_ACQUIRE)
        self._renew_script = redis.register_script(_RENEW)

    @classmethod
    def from_settings(
        cls, redis: Redis, settings: Settings, *, key: str = DEPLOYMENT_KEY, **kwargs: Any
    ) -> RedisRateLimiter:
        """The deployment's arXiv limiter. Live holders renew their lease, so its TTL need not
        cover a slow request: `arxiv_lease_ttl` only bounds how long a killed holder keeps
        its connection from everyone else."""
        return cls(
            redis,
            key=key,
            min_interval=settings.arxiv_min_interval,
            max_connections=settings.arxiv_max_connections,
            lease_ttl=settings.arxiv_lease_ttl,
            **kwargs,
        )

    @property
    def keys(self) -> list[str]:
        """Every Redis key this limiter writes (for tests and admin resets)."""
        return [self.next_key, self.leases_key]

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait until a request may start, hold a connection lease for the block's duration."""
        token = await self._acquire()
        renewer = asyncio.create_task(self._renew_forever(token))
        try:
            yield
        finally:
            # Not awaited: a renewal racing the release is a no-op (it only extends a lease
            # that still exists), and awaiting here could swallow a second cancellation.
            renewer.cancel()
            # Shielded so that a cancellation arriving now cannot leave the lease behind.
            await asyncio.shield(self._release(token))

    async def held(self) -> int:
        """Leases currently in the set (expired ones included until the next decision)."""
        return int(await self.redis.zcard(self.leases_key))

    async def _acquire(self) -> str:
        # A readable, unique token: which host/process holds a lease shows up in Redis.
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        args: list[str | int] = [
            round(self.min_interval * 1e6),
            self.max_connections,
            round(self.lease_ttl * 1e6),
            token,
            self._poll_us,
        ]
        while True:
            try:
                granted, wait_us = await self._acquire_script(
                    keys=[self.next_key, self.leases_key], args=args
                )
            except asyncio.CancelledError:
                # The script may have run before the reply was lost: drop the lease it might
                # have granted rather than block everyone until it expires.
                await asyncio.shield(self._release(token))
                raise
            if int(granted):
                return token
            # Small sleeps (capped) with a little jitter so waiters do not poll in lockstep.
            wait = min(max(int(wait_us), 0) / 1e6, self._max_sleep)
            await self._sleep(wait + random.uniform(0, 0.005))

    async def _release(self, token: str) -> None:
        try:
            await self.redis.zrem(self.leases_key, token)
        except Exception:  # Redis gone: the lease expires by itself after lease_ttl
            log.warning(
                "could not release arXiv lease %s; it expires in %.0fs",
                token,
                self.lease_ttl,
                exc_info=True,
            )

    async def _renew_forever(self, token: str) -> None:
        # Always the real clock: an injected no-op sleep would turn this into a busy loop.
        ttl_us = round(self.lease_ttl * 1e6)
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                kept = await self._renew_script(keys=[self.leases_key], args=[ttl_us, token])
            except Exception:  # transient Redis trouble; the next round tries again
                log.warning("could not renew arXiv lease %s", token, exc_info=True)
                continue
            if not int(kept):
                log.warning("arXiv lease %s expired while in use (stalled process?)", token)
                return


class LocalRateLimiter:
    """The same spacing and connection cap within one process, for work that runs without
    Redis (a command line run inline): nothing else shares its budget then."""

    def __init__(
        self, *, min_interval: float, max_connections: int = 1, sleep: Sleep = stopping.sleep
    ) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0, got {min_interval}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.min_interval = float(min_interval)
        self._connections = asyncio.Semaphore(max_connections)
        self._start = asyncio.Lock()
        self._next = 0.0  # the monotonic time the next request may start
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> LocalRateLimiter:
        return cls(
            min_interval=settings.arxiv_min_interval,
            max_connections=settings.arxiv_max_connections,
            **kwargs,
        )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._connections:
            async with self._start:  # one waiter at a time claims the next start
                wait = self._next - time.monotonic()
                if wait > 0:
                    await self._sleep(wait)
                self._next = time.monotonic() + self.min_interval
            yield
