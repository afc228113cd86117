"""The shared Redis limiter: spacing and the connection cap hold across clients and processes.

Timing assertions are lower bounds only (gaps between request starts at the server, no two
requests in flight), which a loaded machine can only make easier to satisfy.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.fakes.arxiv_server import FakeArxiv, FakePaper, Request
from workers.arxiv import ArxivClient, make_http_client
from workers.politeness import LocalRateLimiter, RedisRateLimiter

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.2  # arXiv's 3 s, scaled down
TOLERANCE = 0.9  # scheduling noise between the limiter's decision and the server's clock
# Each client's first request also pays for lazy imports and a new connection (tens of ms in a
# fresh process), which the tolerance is not meant to absorb: clients warm up on this path
# (through the limiter like any request) and only the requests after it are measured.
WARMUP = "/warmup"


def gaps(requests: Sequence[Request]) -> list[float]:
    starts = sorted(r.started for r in requests)
    return [b - a for a, b in itertools.pairwise(starts)]


def max_in_flight(requests: Sequence[Request]) -> int:
    """Most requests the server was handling at once. `finished` is stamped before the first
    response byte, so a request started after its predecessor's response never overlaps it."""
    events = []
    for r in requests:
        assert r.finished is not None
        events += [(r.started, 1), (r.finished, -1)]
    events.sort(key=lambda e: (e[0], e[1]))  # at a tie, the end counts first
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


@pytest.fixture
def fake(fake_arxiv: FakeArxiv) -> FakeArxiv:
    fake_arxiv.add_papers(
        [FakePaper("2402.15001", "A title", "An abstract.", ["A. Author"], ["cs.AI"])]
    )
    return fake_arxiv


# --- the limiter on its own ------------------------------------------------------------------


@pytest.mark.anyio
async def test_slot_holds_a_lease_and_releases_it(redis_client: Redis, redis_key: str) -> None:
    limiter = RedisRateLimiter(redis_client, key=redis_key, min_interval=5)
    async with limiter.slot():
        assert await limiter.held() == 1
        members = await redis_client.zrange(limiter.leases_key, 0, -1)
        assert members[0].decode().split(":")[1] == str(os.getpid())
    assert await limiter.held() == 0
    # The next start is 5 s away on the Redis clock, and the key does not outlive it.
    ttl_ms = await redis_client.pttl(limiter.next_key)
    assert 0 < ttl_ms <= 5001


@pytest.mark.anyio
async def test_lease_is_released_on_error(redis_client: Redis, redis_key: str) -> None:
    limiter = RedisRateLimiter(redis_client, key=redis_key, min_interval=0)
    with pytest.raises(RuntimeError):
        async with limiter.slot():
            raise RuntimeError("boom")
    assert await limiter.held() == 0


@pytest.mark.anyio
async def test_connection_cap_blocks_until_a_lease_is_released(
    redis_client: Redis, redis_key: str
) -> None:
    """min_interval=0: no spacing at all, and the cap still holds."""
    a = RedisRateLimiter(redis_client, key=redis_key, min_interval=0, max_connections=2)
    b = RedisRateLimiter(redis_client, key=redis_key, min_interval=0, max_connections=2)
    entered = asyncio.Event()
    release_first = asyncio.Event()

    async def hold(limiter: RedisRateLimiter, until: asyncio.Event) -> None:
        async with limiter.slot():
            await until.wait()

    async def third() -> None:
        async with b.slot():
            entered.set()

    first = asyncio.create_task(hold(a, release_first))
    never = asyncio.Event()
    second = asyncio.create_task(hold(b, never))
    while await a.held() < 2:  # both taken at once: the cap is 2, not 1, and no spacing
        await asyncio.sleep(0.01)
    assert not await redis_client.exists(a.next_key)
    waiting = asyncio.create_task(third())
    await asyncio.sleep(0.3)
    assert not entered.is_set()  # a third lease while two are held would break the cap
    release_first.set()
    await asyncio.wait_for(waiting, 5)
    assert entered.is_set()
    await first
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await a.held() == 0


@pytest.mark.anyio
async def test_cancelled_waiter_leaves_no_lease(redis_client: Redis, redis_key: str) -> None:
    limiter = RedisRateLimiter(redis_client, key=redis_key, min_interval=0)
    gate = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot():
            await gate.wait()

    holder = asyncio.create_task(hold())
    while await limiter.held() < 1:
        await asyncio.sleep(0.01)

    async def wait_for_slot() -> None:
        async with limiter.slot():
            pytest.fail("got a slot while another was held")

    waiter = asyncio.create_task(wait_for_slot())
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.set()
    await holder
    assert await limiter.held() == 0


@pytest.mark.anyio
async def test_a_long_request_keeps_its_lease(redis_client: Redis, redis_key: str) -> None:
    """The holder renews its lease, so a request slower than lease_ttl keeps its connection."""
    a = RedisRateLimiter(redis_client, key=redis_key, min_interval=0, lease_ttl=0.45)
    b = RedisRateLimiter(redis_client, key=redis_key, min_interval=0, lease_ttl=0.45)
    order: list[str] = []

    async def slow() -> None:
        async with a.slot():
            order.append("a in")
            await asyncio.sleep(1.0)  # > 2 × lease_ttl
            order.append("a out")

    async def other() -> None:
        async with b.slot():
            order.append("b in")

    first = asyncio.create_task(slow())
    while not order:
        await asyncio.sleep(0.01)
    await asyncio.gather(first, other())
    assert order == ["a in", "a out", "b in"]


def test_invalid_arguments() -> None:
    client = Redis()
    with pytest.raises(ValueError, match="min_interval"):
        RedisRateLimiter(client, min_interval=-1)
    with pytest.raises(ValueError, match="max_connections"):
        RedisRateLimiter(client, min_interval=1, max_connections=0)
    with pytest.raises(ValueError, match="lease_ttl"):
        RedisRateLimiter(client, min_interval=1, lease_ttl=0)


# --- spacing and the cap at the server --------------------------------------------------------


@pytest.mark.anyio
async def test_two_clients_are_spaced_and_never_overlap(
    fake: FakeArxiv, redis_url: str, redis_key: str
) -> None:
    """Two independent clients (own httpx client, own Redis connection, own limiter) on one
    key, running concurrently, start requests at least INTERVAL apart and one at a time."""
    settings = fake.settings(arxiv_min_interval=INTERVAL, arxiv_max_connections=1)

    async def run_client(n: int) -> None:
        redis_conn = Redis.from_url(redis_url)
        limiter = RedisRateLimiter.from_settings(redis_conn, settings, key=redis_key)
        try:
            async with make_http_client(settings) as http:
                client = ArxivClient(http, limiter, settings)
                async with limiter.slot():
                    await http.get(fake.url + WARMUP)
                for _ in range(n):
                    await client.rss(["cs.AI"])
        finally:
            await redis_conn.aclose()

    await asyncio.gather(run_client(3), run_client(3))
    requests = fake.requests_to("/rss")
    assert len(requests) == 6
    assert min(gaps(requests)) >= TOLERANCE * INTERVAL
    assert max_in_flight(fake.requests) == 1  # warm-ups included


@pytest.mark.anyio
async def test_connection_cap_of_two_at_the_server(
    fake: FakeArxiv, redis_url: str, redis_key: str
) -> None:
    fake.latency = 0.1  # so that requests would overlap if the limiter let them
    settings = fake.settings(arxiv_min_interval=0, arxiv_max_connections=2)

    async def run_client() -> None:
        redis_conn = Redis.from_url(redis_url)
        limiter = RedisRateLimiter.from_settings(redis_conn, settings, key=redis_key)
        try:
            async with make_http_client(settings) as http:
                client = ArxivClient(http, limiter, settings)
                for _ in range(3):
                    await client.rss(["cs.AI"])
        finally:
            await redis_conn.aclose()

    await asyncio.gather(*(run_client() for _ in range(4)))
    assert len(fake.requests) == 12
    assert max_in_flight(fake.requests) <= 2


# --- separate processes -----------------------------------------------------------------------

WORKER = """
import asyncio, sys
import httpx
from redis.asyncio import Redis
from workers.politeness import RedisRateLimiter

async def main(redis_url, key, url, n, interval, ttl):
    redis = Redis.from_url(redis_url)
    limiter = RedisRateLimiter(redis, key=key, min_interval=interval, lease_ttl=ttl)
    async with httpx.AsyncClient() as http:
        async with limiter.slot():  # warm-up: imports, connection (see WARMUP in the test)
            await http.get(url.rsplit("/", 2)[0] + "/warmup")  # a 404, and that is fine
        if n == 0:  # hold a lease forever: the parent SIGKILLs this process
            async with limiter.slot():
                print("held", flush=True)
                await asyncio.sleep(3600)
        for _ in range(n):
            async with limiter.slot():
                (await http.get(url)).raise_for_status()
    await redis.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]),
                 float(sys.argv[6])))
"""


def spawn(redis_url: str, key: str, url: str, n: int, ttl: float = 30.0) -> subprocess.Popen[str]:
    args = [sys.executable, "-c", WORKER, redis_url, key, url, str(n), str(INTERVAL), str(ttl)]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_two_processes_share_the_limit(fake: FakeArxiv, redis_url: str, redis_key: str) -> None:
    procs = [spawn(redis_url, redis_key, f"{fake.url}/rss/cs.AI", 3) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    requests = fake.requests_to("/rss")
    assert len(requests) == 6
    assert min(gaps(requests)) >= TOLERANCE * INTERVAL
    assert max_in_flight(fake.requests) == 1  # warm-ups included


def test_lease_of_a_killed_holder_expires(fake: FakeArxiv, redis_url: str, redis_key: str) -> None:
    proc = spawn(redis_url, redis_key, f"{fake.url}/rss/cs.AI", 0, ttl=0.5)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    finally:
        proc.kill()  # SIGKILL: no finally blocks, no release
        proc.wait(timeout=10)

    async def take_slot() -> int:
        client = Redis.from_url(redis_url)
        limiter = RedisRateLimiter(client, key=redis_key, min_interval=0, lease_ttl=5)
        try:
            assert await limiter.held() == 1  # the dead process's lease is still there
            async with limiter.slot():
                return await limiter.held()
        finally:
            await client.aclose()

    # The dead lease frees itself after its 0.5 s; the bound only catches a hang.
    assert asyncio.run(asyncio.wait_for(take_slot(), 20)) == 1


# --- without Redis ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_local_limiter_spaces_starts_and_caps_connections() -> None:
    limiter = LocalRateLimiter(min_interval=0.05, max_connections=2)
    starts: list[float] = []
    in_flight = most = 0

    async def request() -> None:
        nonlocal in_flight, most
        async with limiter.slot():
            starts.append(time.monotonic())
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.12)
            in_flight -= 1

    await asyncio.gather(*(request() for _ in range(5)))
    assert most == 2
    assert min(gaps_of(starts)) >= TOLERANCE * 0.05


def gaps_of(starts: list[float]) -> list[float]:
    ordered = sorted(starts)
    return [b - a for a, b in itertools.pairwise(ordered)]


def test_local_limiter_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        LocalRateLimiter(min_interval=-1)
    with pytest.raises(ValueError):
        LocalRateLimiter(min_interval=1, max_connections=0)
