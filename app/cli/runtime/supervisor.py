"""`papershelf up`: the site and its workers as child processes, one command, clean exit.

Without PAPERSHELF_REDIS_URL it starts an embedded Redis-compatible server on a private
socket first. A child that dies is restarted with a growing delay; Ctrl+C (SIGINT) or
SIGTERM stops everything within STOP_TIMEOUT: the children get SIGTERM (workers re-queue
the jobs they cut short) and SIGKILL if still running near the end, then the embedded server
stops, so no process is left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from app.cli.console import out
from app.cli.runtime.children import Child, children, stop_processes
from app.cli.runtime.redis_server import EmbeddedRedis
from app.settings import Settings

log = logging.getLogger(__name__)

# The whole stop, from the signal to the return. The workers need about their
# job_completion_wait (2 s, workers.pool) plus closing; the embedded Redis gets the last
# REDIS_STOP_SHARE (it keeps nothing on disk and stops at once).
STOP_TIMEOUT = 5.0
REDIS_STOP_SHARE = 1.0


class Supervisor:
    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.settings = settings
        self.host, self.port = host, port
        self.stopping = False
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = children(host, port, settings)

    def _signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._signal)
        signal.signal(signal.SIGTERM, self._signal)
        env = dict(os.environ)
        if not self.settings.redis_url:
            self.redis = EmbeddedRedis(Path(self.settings.data_dir))
            env["PAPERSHELF_REDIS_URL"] = self.redis.start()
            log.info("embedded Redis at %s", self.redis.url)
        env["PAPERSHELF_DATA_DIR"] = str(Path(self.settings.data_dir).resolve())
        out.print(
            f"Papershelf on http://{self.host}:{self.port}  (Ctrl+C stops everything)",
            markup=False,
            highlight=False,
        )
        try:
            for child in self.children:
                child.start(env)
            while not self.stopping:
                self._watch(env)
                time.sleep(0.2)
        finally:
            self._stop_all()
        return 0

    def _watch(self, env: dict[str, str]) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.process is None:
                if now >= child.next_start:
                    child.start(env)
                continue
            code = child.process.poll()
            if code is None:
                if now - child.started_at > 60:
                    child.restarts = 0  # it has been healthy for a while
                continue
            delay = min(2**child.restarts, 60)
            log.warning("%s exited with %s; restarting in %d s", child.name, code, delay)
            out.print(
                f"{child.name} exited with code {code}; restarting in {delay} s",
                markup=False,
                highlight=False,
            )
            child.process = None
            child.restarts += 1
            child.next_start = now + delay

    def _stop_all(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT
        procs = [c.process for c in self.children if c.process is not None]
        for pid in stop_processes(procs, deadline - REDIS_STOP_SHARE):
            log.warning("child %d did not stop in time; killed it", pid)
        if self.redis:
            self.redis.stop(timeout=max(0.1, deadline - time.monotonic()))
        out.print("stopped", markup=False, highlight=False)
