"""Waits that end when the worker stops: back-offs, the arXiv limiter, a whole arq job.

The bounds below are correctness bounds, not benchmarks: every wait asked for is ten minutes,
so anything ending within seconds was interrupted.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import pytest
from arq import create_pool
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from tenacity import wait_fixed

from app.jobs.connections import redis_settings
from workers import stopping
from workers.politeness import LocalRateLimiter, RedisRateLimiter
from workers.pool import ResilientWorker
from workers.retrying import call_with_retries

LONG = 600.0  # far longer than any bound here
BOUND = 10.0


class Flaky(Exception):
    pass


async def _interrupted(coro: Any) -> asyncio.Task[Any]:
    """Start `coro`, let it reach its wait, stop the loop's worker; the finished task."""
    task = asyncio.ensure_future(coro)
    for _ in range(20):  # a few loop turns: the task is waiting by then
        await asyncio.sleep(0)
    assert not task.done()
    stopping.interrupt_sleeps(asyncio.get_running_loop())
    await asyncio.wait([task], timeout=BOUND)
    assert task.done(), "the wait was not interrupted"
    return task


def test_a_waiting_sleep_is_cancelled_and_later_ones_at_once() -> None:
    async def go() -> None:
        task = await _interrupted(stopping.sleep(LONG))
        assert task.cancelled()
        # A wait that begins after the stop does not begin at all.
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.ensure_future(stopping.sleep(LONG)), BOUND)

    asyncio.run(go())

    async def elsewhere() -> None:  # another loop (another test, an inline command): unaffected
        assert not stopping.is_stopping(asyncio.get_running_loop())
        await stopping.sleep(0)

    asyncio.run(elsewhere())


def test_a_retry_back_off_ends_at_once_and_is_not_retried() -> None:
    attempts: list[int] = []

    async def attempt(n: int) -> None:
        attempts.append(n)
        raise Flaky

    async def go() -> asyncio.Task[Any]:
        return await _interrupted(
            call_with_retries(attempt, transient=(Flaky,), attempts=5, wait=wait_fixed(LONG))
        )

    assert asyncio.run(go()).cancelled()
    assert attempts == [1]


def test_the_limiters_waits_end_at_once(redis_url: str, redis_key: str) -> None:
    async def go() -> None:
        local = LocalRateLimiter(min_interval=LONG)
        async with local.slot():  # the first request starts at once; the next must wait
            pass

        async def second_local() -> None:
            async with local.slot():
                raise AssertionError("no slot before the interval")

        assert (await _interrupted(second_local())).cancelled()

    asyncio.run(go())

    async def shared() -> None:
        client = Redis.from_url(redis_url)
        try:
            limiter = RedisRateLimiter(client, key=redis_key, min_interval=LONG)
            async with limiter.slot():
                pass

            async def second() -> None:
                async with limiter.slot():
                    raise AssertionError("no slot before the interval")

            assert (await _interrupted(second())).cancelled()
            assert await limiter.held() == 0  # no lease left behind
        finally:
            await client.aclose()

    asyncio.run(shared())


async def _backing_off(ctx: dict[str, Any]) -> None:
    await stopping.sleep(LONG)  # a job waiting out a Retry-After


def test_the_worker_cancels_a_waiting_job_without_its_grace_and_requeues_it(
    redis_url: str,
) -> None:
    queue = f"papershelf-test:stopping:{uuid.uuid4().hex}"
    job_id = f"{queue}:job"

    async def go() -> None:
        pool = await create_pool(redis_settings(redis_url))
        worker = ResilientWorker(
            functions=[_backing_off],
            queue_name=queue,
            redis_settings=redis_settings(redis_url),
            handle_signals=False,
            poll_delay=0.05,
            # Longer than the bound: only the interrupted wait can end the job in time.
            job_completion_wait=int(LONG),
        )
        try:
            await pool.enqueue_job("_backing_off", _job_id=job_id, _queue_name=queue)
            main = asyncio.create_task(worker.main())
            worker.main_task = main
            for _ in range(200):
                if worker.tasks:
                    break
                await asyncio.sleep(0.05)
            assert worker.tasks, "the job did not start"
            for _ in range(20):
                await asyncio.sleep(0)
            worker.handle_sig_wait_for_completion(signal.SIGTERM)
            await asyncio.wait([main], timeout=BOUND)
            assert main.done(), "the worker waited for a job that was only sleeping"
            await asyncio.gather(*worker.tasks.values())
            assert await pool.zscore(queue, job_id) is not None  # still queued: it runs again
            assert not await pool.exists(in_progress_key_prefix + job_id)
            assert worker.jobs_retried == 1 and worker.jobs_failed == 0
        finally:
            await worker.close()
            await pool.delete(queue, f"arq:job:{job_id}", f"arq:retry:{job_id}")
            await pool.aclose()

    asyncio.run(go())
