"""Bounded retries for the pools' HTTP clients, composed from tenacity's strategies.

One place for the policy every client shares: a *positive* filter (`retry_if_exception_type`
over the client's named transient errors; anything else, and cancellation, fails at once),
`stop_after_attempt`, an exponential back-off with jitter that yields to the server's
`Retry-After` (`wait_retry_after`), and one log line per retry (`log_before_sleep`).
`call_with_retries` runs an attempt function under such a policy; when attempts run out the
last transient error is raised as it is, and the caller turns it into its own error.

Only in-job retries live here: re-queueing a whole job later is arq's `Retry`
(`workers.pool.retry_job`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
    wait_none,
)
from tenacity.wait import wait_base

from workers import stopping

__all__ = [
    "RetryCallState",
    "Sleep",
    "call_with_retries",
    "log_before_sleep",
    "parse_retry_after",
    "retry_if_exception_type",
    "stop_after_attempt",
    "wait_exponential_jitter",
    "wait_none",
    "wait_retry_after",
]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]
Transient = tuple[type[BaseException], ...]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


# Lower-case, like tenacity's own strategies, which it is composed with.
class wait_retry_after(wait_base):
    """`backoff`, or the failed attempt's `retry_after` hint (seconds, from the server) when
    that is longer. With `cap`, the hint is first cut to `cap`: a job must not sleep past its
    own timeout because a server asked it to."""

    def __init__(self, backoff: wait_base, *, cap: float | None = None) -> None:
        self.backoff = backoff
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = float(self.backoff(retry_state))
        retry_after = getattr(_failure(retry_state), "retry_after", None)
        if retry_after is None:
            return backoff
        if self.cap is not None:
            retry_after = min(retry_after, self.cap)
        return max(backoff, retry_after)


def log_before_sleep(
    logger: logging.Logger,
    what: str,
    attempts: int,
    describe: Callable[[BaseException], str],
    on_retry: Callable[[BaseException | None, str], None] | None = None,
) -> Callable[[RetryCallState], None]:
    """A `before_sleep` hook: `on_retry(error, reason)` (metrics, bookkeeping), then one
    warning "<what>: attempt n/N failed (<reason>); retrying in <s>s"."""

    def before_sleep(state: RetryCallState) -> None:
        exc = _failure(state)
        reason = describe(exc) if exc is not None else "unknown"
        if on_retry is not None:
            on_retry(exc, reason)
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "%s: attempt %d/%d failed (%s); retrying in %.1fs",
            what,
            state.attempt_number,
            attempts,
            reason,
            delay,
        )

    return before_sleep


async def call_with_retries(
    attempt: Callable[[int], Awaitable[T]],
    *,
    transient: Transient,
    attempts: int,
    wait: wait_base,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    sleep: Sleep = stopping.sleep,
) -> T:
    """`await attempt(n)` for n = 1, 2, … until it returns, raises something not in
    `transient`, or `attempts` ran out (the last error is then raised as it is). The
    back-off sleeps end at once when the worker stops (workers.stopping)."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait,
        retry=retry_if_exception_type(transient),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    async for trying in retrying:
        with trying:
            return await attempt(trying.retry_state.attempt_number)
    raise AssertionError("tenacity returned without a result")  # pragma: no cover
