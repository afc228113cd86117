"""Requests for the fetch pool's alert jobs (`workers/fetch.py`): match a fetched day against
every saved-search alert, and POST one delivery. Their job ids make repeats collapse.

A delivery reopened for another round (a retry, or an admin's "send it again") is queued by
`queue_rounds`, which says which ones the queue would not take: the caller puts those back
as failed and due now (`app.alerts.reschedule`), so none is left pending without a job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date

from app.jobs.connections import REDIS_ERRORS, QueueUnavailable
from app.jobs.queueing import JobRequest, open_queue
from app.settings import Settings

MATCH_FUNCTION = "match_alerts"
DELIVER_FUNCTION = "deliver_alert"


def match_request(category: str, day: date) -> JobRequest:
    return JobRequest(MATCH_FUNCTION, (category, day.isoformat()), f"alerts:{category}:{day}")


def delivery_request(delivery_id: int, round_: int = 0) -> JobRequest:
    """One round of one delivery: a later round (a retry) is a new job, since a finished
    job's id stays taken while its result is kept."""
    suffix = f":r{round_}" if round_ else ""
    return JobRequest(DELIVER_FUNCTION, (delivery_id,), f"alerts:delivery:{delivery_id}{suffix}")


async def queue_rounds(
    send: Callable[[JobRequest], Awaitable[object]], reopened: Sequence[tuple[int, int]]
) -> tuple[list[int], list[int]]:
    """Queue one round of each reopened (delivery id, round) with `send`: (the ids queued,
    the ids not queued because the queue failed — from the first failure on)."""
    queued: list[int] = []
    for n, (delivery_id, round_) in enumerate(reopened):
        try:
            await send(delivery_request(delivery_id, round_))
        except (QueueUnavailable, *REDIS_ERRORS):
            return queued, [pk for pk, _ in reopened[n:]]
        queued.append(delivery_id)
    return queued, []


async def requeue(
    settings: Settings, reopened: Sequence[tuple[int, int]], *, quick: bool = False
) -> tuple[list[int], list[int]]:
    """`queue_rounds` from outside a worker (the CLI, the admin API), over one connection;
    with no Redis at all every delivery is left over."""
    try:
        async with open_queue(settings, quick=quick) as send:
            return await queue_rounds(send, reopened)
    except QueueUnavailable:
        return [], [pk for pk, _ in reopened]
