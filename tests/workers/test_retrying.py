"""The shared retry pieces: Retry-After parsing, the wait that honours it, the loop's bounds."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from tenacity import wait_fixed

from workers.retrying import (
    call_with_retries,
    log_before_sleep,
    parse_retry_after,
    wait_retry_after,
)


class Hinted(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Other(Exception):
    pass


def test_parse_retry_after() -> None:
    now = datetime(2024, 2, 26, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0
    assert parse_retry_after("Mon, 26 Feb 2024 12:00:30 GMT", now) == 30
    assert parse_retry_after("Mon, 26 Feb 2024 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


def run(
    errors: list[BaseException], *, attempts: int = 5, cap: float | None = None
) -> tuple[object, list[float], list[int]]:
    """Fail with `errors` in turn, then succeed; what came back, the waits, the attempts."""
    sleeps: list[float] = []
    tried: list[int] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def attempt(n: int) -> str:
        tried.append(n)
        if errors:
            raise errors.pop(0)
        return "ok"

    async def go() -> object:
        try:
            return await call_with_retries(
                attempt,
                transient=(Hinted,),
                attempts=attempts,
                wait=wait_retry_after(wait_fixed(2), cap=cap),
                sleep=sleep,
            )
        except BaseException as exc:
            return exc

    return asyncio.run(go()), sleeps, tried


def test_the_longer_of_backoff_and_retry_after() -> None:
    result, sleeps, tried = run([Hinted(), Hinted(7), Hinted(1)])
    assert result == "ok" and sleeps == [2, 7, 2] and tried == [1, 2, 3, 4]


def test_retry_after_is_capped_when_asked() -> None:
    _, sleeps, _ = run([Hinted(300)], cap=60)
    assert sleeps == [60]


def test_only_named_errors_are_retried() -> None:
    other = Other()
    result, sleeps, tried = run([other])
    assert result is other and sleeps == [] and tried == [1]
    cancelled = asyncio.CancelledError()
    result, sleeps, tried = run([cancelled])
    assert result is cancelled and tried == [1]


def test_the_last_error_comes_out_when_attempts_run_out() -> None:
    errors: list[BaseException] = [Hinted(1), Hinted(2), Hinted(3)]
    last = errors[-1]
    result, sleeps, tried = run(errors, attempts=3)
    assert result is last and len(sleeps) == 2 and tried == [1, 2, 3]


def test_log_before_sleep(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[BaseException | None, str]] = []
    hook = log_before_sleep(
        logging.getLogger("tests.retrying"),
        "GET https://x",
        4,
        lambda exc: f"{type(exc).__name__}!",
        lambda exc, reason: seen.append((exc, reason)),
    )

    async def go() -> None:
        async def attempt(n: int) -> None:
            if n == 1:
                raise Hinted()

        async def sleep(_: float) -> None:
            pass

        await call_with_retries(
            attempt,
            transient=(Hinted,),
            attempts=4,
            wait=wait_fixed(1.5),
            before_sleep=hook,
            sleep=sleep,
        )

    with caplog.at_level(logging.WARNING, logger="tests.retrying"):
        asyncio.run(go())
    (line,) = [r.getMessage() for r in caplog.records if r.name == "tests.retrying"]
    assert line == "GET https://x: attempt 1/4 failed (Hinted!); retrying in 1.5s"
    ((exc, reason),) = seen
    assert isinstance(exc, Hinted) and reason == "Hinted!"
