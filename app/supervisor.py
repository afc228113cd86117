"""`papershelf up`: the site and its workers as child processes, one command, clean exit.

Without PAPERSHELF_REDIS_URL it starts an embedded Redis-compatible server on a private
socket first. A child that dies is restarted with a growing delay; Ctrl+C (SIGINT) or
SIGTERM stops the children gracefully (SIGTERM, then SIGKILL after a bound) and then the
embedded server, so no process is left behind.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.redis_server import EmbeddedRedis
from app.settings import Settings, get_settings
from app.summaries import checkpoint_present, missing_checkpoint

log = logging.getLogger("papershelf.up")

STOP_TIMEOUT = 40.0  # covers the worker's job_completion_wait


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            self.argv, env=env, start_new_session=True, preexec_fn=die_with_parent
        )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)


def _load_prctl():  # type: ignore[no-untyped-def]
    # Looked up once in the parent: nothing may be imported between fork and exec.
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec (children also get their own session): a terminal's Ctrl+C
    reaches only the supervisor, which stops them in order (workers first, Redis last), and
    they get SIGTERM if the supervisor dies, so a killed supervisor leaves no orphans."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def ml_unavailable(settings: Settings) -> str | None:
    """Why the ML worker cannot run here (no torch, no checkpoint of any of its models), or
    None when it can.
    Checked without importing torch or the model."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("ml.worker") is None:
        return "the ML pool needs the ML extra: pip install -e '.[ml]'"
    # Any one model is enough: the summarizer, the FSQ tokenizer or the diffusion model.
    paths = (settings.fsq_path_resolved, settings.diffusion_path_resolved)
    if not checkpoint_present(settings.summarizer_path_resolved) and not any(
        checkpoint_present(p) for p in paths
    ):
        return (
            f"{missing_checkpoint(settings.summarizer_path_resolved)}; and no picture model at "
            f"{paths[0]} or {paths[1]} (`papershelf ml train-fsq`, `papershelf ml "
            "train-diffusion`)"
        )
    return None


def ml_available(settings: Settings | None = None) -> bool:
    return ml_unavailable(settings or get_settings()) is None


def children(host: str, port: int, settings: Settings | None = None) -> list[Child]:
    cli = [sys.executable, "-m", "app.cli"]
    procs = [
        Child("web", [*cli, "serve", "--host", host, "--port", str(port), "--no-migrate"]),
        Child("fetch worker", [*cli, "worker", "--pool", "fetch"]),
    ]
    # Without torch or a checkpoint the ML worker would only exit and be restarted forever.
    if (reason := ml_unavailable(settings or get_settings())) is None:
        procs.append(Child("ml worker", [*cli, "worker", "--pool", "ml"]))
    else:
        log.info("not starting the ML worker: %s", reason)
    # The FAQ's LLM pool (torch-free) only when an endpoint is configured.
    if (settings or get_settings()).llm_base_url:
        procs.append(Child("llm worker", [*cli, "worker", "--pool", "llm"]))
    return procs


class Supervisor:
    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.settings = settings
        self.host, self.port = host, port
        self.stopping = False
        self.redis: EmbeddedRedis | None = None
        self.children = children(host, port, settings)

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
        print(
            f"Papershelf on http://{self.host}:{self.port}  (Ctrl+C stops everything)", flush=True
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
            print(f"{child.name} exited with code {code}; restarting in {delay} s", flush=True)
            child.process = None
            child.restarts += 1
            child.next_start = now + delay

    def _stop_all(self) -> None:
        live = [c.process for c in self.children if c.process and c.process.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.redis:
            self.redis.stop()
        print("stopped", flush=True)
