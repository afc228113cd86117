"""On-demand look-ups: papers a reader asks for by id that the store lacks.

Anonymous visitors must not be able to make the instance hammer arXiv, so a page never
queues a look-up of its own:

- coalescing: a page adds its ids to one pending set in Redis and queues the drain job of
  the set's current *generation* (`fetch_ondemand`, job id `ondemand:<generation>`), so every
  page of a generation collapses into one job. The job bumps the generation and takes up to
  `BATCH` ids in one atomic step, then asks arXiv for all of them in one `id_list` request;
  an id added after that step lands in the next generation's job, never in a gap;
- budgets: each newly asked id costs one unit of the client's and of the instance's hourly
  budget (`PAPERSHELF_ONDEMAND_PER_CLIENT_PER_HOUR`, `PAPERSHELF_ONDEMAND_GLOBAL_PER_HOUR`),
  checked and taken in the same atomic step, so they hold across processes; an id asked
  again within `ASKED_TTL_S` costs nothing and queues nothing (its answer is pending, or
  arXiv said it does not know it);
- scheduled work first: the drain job runs only while no other fetch job is due; otherwise
  it puts itself back `PAPERSHELF_ONDEMAND_DELAY` seconds later (`scheduled_work_due`).

Ids that cannot exist yet never get here (`app.ingest.ids.not_yet_issued`).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from arq.connections import ArqRedis

from app.jobs.connections import REDIS_ERRORS, QueueUnavailable, quick_pool
from app.jobs.queueing import JobRequest, queue_name, scoped_job_id, submit
from app.settings import Settings

FUNCTION = "fetch_ondemand"
BATCH = 100  # ids per look-up: one `id_list` request of the query API takes 100
ASKED_TTL_S = 3600  # an asked id is not asked again for this long
WINDOW_S = 3600  # the budgets' window
# What the ask script says of each id.
QUEUED, PENDING, UNKNOWN, OVER = "queued", "pending", "unknown", "over"

# KEYS: pending set, generation, client counter, global counter.
# ARGV: client limit, global limit, window ttl, asked ttl, asked-key prefix, ids...
# Returns {generation, pending count, status of each id}.
_ASK = """
local fresh = {}
local statuses = {}
for i = 6, #ARGV do
  local seen = redis.call('GET', ARGV[5] .. ARGV[i])
  if seen then
    statuses[#statuses + 1] = seen
  else
    statuses[#statuses + 1] = 'over'
    fresh[#fresh + 1] = i - 5
  end
end
local grant = #fresh
local client_left = tonumber(ARGV[1]) - tonumber(redis.call('GET', KEYS[3]) or '0')
local global_left = tonumber(ARGV[2]) - tonumber(redis.call('GET', KEYS[4]) or '0')
grant = math.max(0, math.min(grant, client_left, global_left))
for j = 1, grant do
  local at = fresh[j]
  local id = ARGV[at + 5]
  redis.call('SET', ARGV[5] .. id, 'pending', 'EX', ARGV[4])
  redis.call('SADD', KEYS[1], id)
  statuses[at] = 'queued'
end
if grant > 0 then
  redis.call('INCRBY', KEYS[3], grant)
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  redis.call('INCRBY', KEYS[4], grant)
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
local out = {redis.call('GET', KEYS[2]) or '0', redis.call('SCARD', KEYS[1])}
for _, s in ipairs(statuses) do out[#out + 1] = s end
return out
"""

# KEYS: pending set, generation. ARGV: batch size. Returns the ids taken.
_TAKE = """
redis.call('INCR', KEYS[2])
return redis.call('SPOP', KEYS[1], ARGV[1])
"""


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    @property
    def pending(self) -> str:
        return f"{self.prefix}:pending"

    @property
    def generation(self) -> str:
        return f"{self.prefix}:generation"

    @property
    def asked(self) -> str:  # + the id
        return f"{self.prefix}:asked:"

    def client(self, client: str, window: int) -> str:
        return f"{self.prefix}:client:{client}:{window}"

    def everyone(self, window: int) -> str:
        return f"{self.prefix}:global:{window}"


def keys(settings: Settings) -> Keys:
    # Under the fetch queue's name: deployments sharing a Redis keep separate budgets.
    return Keys(f"{settings.fetch_queue}:ondemand")


def budget_key(address: str) -> str:
    """The budget a client address draws on: its IPv6 /64 (one host's usual allocation, so
    rotating addresses inside it gains nothing), or the address itself."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def enabled(settings: Settings) -> bool:
    return settings.ondemand_per_client_per_hour > 0 and settings.ondemand_global_per_hour > 0


def drain_request(settings: Settings, generation: int) -> JobRequest:
    """The drain job of a generation, after a short wait that lets a burst of pages join."""
    return JobRequest(
        FUNCTION,
        (),
        f"ondemand:{generation}",
        options={"_defer_by": settings.ondemand_delay},
    )


@dataclass(slots=True)
class Asked:
    """What became of each id a page asked for."""

    queued: list[str] = field(default_factory=list)  # asked now: a look-up is on its way
    pending: list[str] = field(default_factory=list)  # asked before, no answer yet
    unknown: list[str] = field(default_factory=list)  # arXiv recently said it has no such id
    over_budget: list[str] = field(default_factory=list)  # not asked: over a budget
    retry_after: int = 0  # seconds until the budgets' window ends

    @property
    def fetching(self) -> list[str]:
        return self.queued + self.pending


async def ask(
    settings: Settings, ids: Sequence[str], client: str, *, now: float | None = None
) -> Asked:
    """Ask for `ids` (normalised, possible, missing from the store) on behalf of `client`
    (its address), within the budgets. Raises QueueUnavailable when Redis is missing or
    does not answer."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    k = keys(settings)
    asked = Asked(retry_after=max(1, WINDOW_S - int(now % WINDOW_S)))
    async with quick_pool(settings) as redis:
        try:
            script = redis.eval(
                _ASK,
                4,
                k.pending,
                k.generation,
                k.client(budget_key(client), window),
                k.everyone(window),
                str(settings.ondemand_per_client_per_hour),
                str(settings.ondemand_global_per_hour),
                str(WINDOW_S + 60),
                str(ASKED_TTL_S),
                k.asked,
                *ids,
            )
            reply = await cast("Awaitable[list[Any]]", script)
            generation, waiting, *statuses = (
                v.decode() if isinstance(v, bytes) else v for v in reply
            )
            sort = {
                QUEUED: asked.queued,
                PENDING: asked.pending,
                UNKNOWN: asked.unknown,
                OVER: asked.over_budget,
            }
            for arxiv_id, status in zip(ids, statuses, strict=True):
                sort.get(status, asked.pending).append(arxiv_id)
            # Queue (or find queued) the generation's drain job whenever ids wait: this also
            # heals a drain job that was lost (a flushed queue), at the next page view.
            if int(waiting):
                await submit(redis, settings, drain_request(settings, int(generation)))
        except REDIS_ERRORS as exc:
            raise QueueUnavailable(f"Redis is unreachable ({type(exc).__name__})") from exc
    return asked


# --- the drain job's side (workers.fetch.fetch_ondemand) ------------------------------------


async def scheduled_work_due(redis: ArqRedis, settings: Settings) -> bool:
    """Whether any fetch job other than on-demand look-ups is due or running: arq keeps a job
    in its queue's sorted set, scored by when it is due, until the job has finished."""
    due = await redis.zrangebyscore(queue_name(settings), "-inf", int(time.time() * 1000))
    ours = scoped_job_id(settings, "ondemand:").encode()
    return any(not (m if isinstance(m, bytes) else m.encode()).startswith(ours) for m in due)


async def take_batch(redis: ArqRedis, settings: Settings, size: int = BATCH) -> list[str]:
    """Start a new generation and take up to `size` pending ids, in one atomic step."""
    k = keys(settings)
    script = redis.eval(_TAKE, 2, k.pending, k.generation, str(size))
    taken = await cast("Awaitable[list[Any] | None]", script)
    return sorted(v.decode() if isinstance(v, bytes) else str(v) for v in taken or [])


async def answered(
    redis: ArqRedis, settings: Settings, found: Iterable[str], unknown: Iterable[str]
) -> None:
    """Record a look-up's answer: found ids are in the store now; unknown ones are remembered
    as such for `ASKED_TTL_S`, so asking again costs nothing and queries nothing."""
    k = keys(settings)
    async with redis.pipeline(transaction=True) as pipe:
        if found_keys := [k.asked + i for i in found]:
            pipe.delete(*found_keys)
        for arxiv_id in unknown:
            pipe.set(k.asked + arxiv_id, UNKNOWN, ex=ASKED_TTL_S)
        await pipe.execute()


async def forget(redis: ArqRedis, settings: Settings, ids: Iterable[str]) -> None:
    """A look-up failed: let these ids be asked for again (a reader's next visit)."""
    if asked_keys := [keys(settings).asked + i for i in ids]:
        await redis.delete(*asked_keys)


async def put_back(redis: ArqRedis, settings: Settings, ids: Sequence[str]) -> None:
    """A look-up was cancelled before its answer: its ids wait for the next drain job."""
    if ids:
        await cast("Awaitable[int]", redis.sadd(keys(settings).pending, *ids))


async def next_drain(redis: ArqRedis, settings: Settings) -> bool:
    """Queue the current generation's drain job if ids still wait (more than one batch)."""
    k = keys(settings)
    if not await cast("Awaitable[int]", redis.scard(k.pending)):
        return False
    generation = int(await redis.get(k.generation) or 0)
    return await submit(redis, settings, drain_request(settings, generation)) is not None
