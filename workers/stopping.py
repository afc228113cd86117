"""Stopping a worker promptly: waits that end as soon as the worker is told to stop.

On SIGTERM/SIGINT arq stops taking jobs, lets running ones go on for `job_completion_wait`
seconds (workers.pool) and then cancels them; a cancelled job stays on its queue and runs
again. A job that is only *waiting* — a retry back-off, a server's `Retry-After`, its turn at
the arXiv limiter — would do nothing useful in that time, so every such wait goes through
`sleep`, which the worker's signal handler interrupts (`interrupt_sleeps`): the waiting task
is cancelled at once, and a wait that begins after the signal is cancelled as it begins.
Work in progress (a request, a page being written) keeps the grace period.

The state is per event loop, so processes that run many loops (tests, inline commands) never
see another loop's stop.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class _LoopState:
    stopping: bool = False
    sleepers: set[asyncio.Task[Any]] = field(default_factory=set)


_STATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
    weakref.WeakKeyDictionary()
)


def _state(loop: asyncio.AbstractEventLoop) -> _LoopState:
    state = _STATES.get(loop)
    if state is None:
        state = _STATES[loop] = _LoopState()
    return state


async def sleep(delay: float) -> None:
    """`asyncio.sleep(delay)`, except that the task is cancelled as soon as this loop's
    worker is stopping (CancelledError: never retried, and arq re-queues the job)."""
    task = asyncio.current_task()
    state = _state(asyncio.get_running_loop())
    if task is not None:
        if state.stopping:
            task.cancel()  # delivered at the await below
        state.sleepers.add(task)
    try:
        await asyncio.sleep(delay)
    finally:
        if task is not None:
            state.sleepers.discard(task)


def interrupt_sleeps(loop: asyncio.AbstractEventLoop) -> int:
    """Mark `loop` as stopping and cancel every task now waiting in `sleep` on it; returns
    how many were. Called from the worker's signal handler (on the loop's thread)."""
    state = _state(loop)
    state.stopping = True
    waiting = [t for t in state.sleepers if not t.done()]
    for task in waiting:
        task.cancel()
    if waiting:
        log.info("stopping: cancelled %d waiting job task(s); they will run again", len(waiting))
    return len(waiting)


def is_stopping(loop: asyncio.AbstractEventLoop) -> bool:
    return _state(loop).stopping
