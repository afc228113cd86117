"""What every pool shares: worker settings built when the worker starts (never at import),
the per-replica health key, and re-queueing a failed job with a doubling delay."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from arq import Retry
from arq.worker import get_kwargs

from app.settings import Settings
from workers import fetch, llm
from workers.pool import JOB_COMPLETION_WAIT, health_check_key, retry_job

ROOT = Path(__file__).resolve().parents[2]


def test_importing_a_pool_reads_no_environment() -> None:
    """A broken setting only fails when a worker starts, not when a pool is imported."""
    code = "import workers.fetch, workers.llm, workers.pool, workers.arxiv, workers.retrying"
    env = {**os.environ, "PAPERSHELF_FETCH_JOB_TIMEOUT": "not a number"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def test_fetch_worker_settings(tmp_path: Path) -> None:
    s = Settings(
        data_dir=tmp_path,
        fetch_queue="q:fetch",
        fetch_job_timeout=123,
        redis_url="redis://127.0.0.1:6390/3",
    )
    ws = fetch.worker_settings(s)
    assert ws["queue_name"] == "q:fetch" and ws["job_timeout"] == 123
    assert ws["functions"] == fetch.FUNCTIONS and ws["cron_jobs"] == fetch.CRON_JOBS
    assert (ws["max_tries"], ws["keep_result"], ws["max_jobs"]) == (fetch.MAX_TRIES, 60, 4)
    # A short grace on SIGTERM: `papershelf up` stops within 5 s (waiting jobs are cut at once).
    assert (ws["health_check_interval"], ws["job_completion_wait"]) == (10, JOB_COMPLETION_WAIT)
    assert JOB_COMPLETION_WAIT <= 2
    assert ws["health_check_key"] == f"q:fetch:health:{socket.gethostname()}:{os.getpid()}"
    assert (ws["redis_settings"].port, ws["redis_settings"].database) == (6390, 3)
    assert ws["on_startup"] is fetch.startup and ws["on_shutdown"] is fetch.shutdown
    # arq takes the dict as it takes a settings class (`papershelf worker` passes it on).
    assert get_kwargs(ws)["queue_name"] == "q:fetch"


def test_worker_settings_is_built_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import get_settings

    monkeypatch.setenv("PAPERSHELF_LLM_QUEUE", "q:llm-now")
    get_settings.cache_clear()
    try:
        assert llm.WorkerSettings["queue_name"] == "q:llm-now"
        assert health_check_key("q:llm-now") == llm.WorkerSettings["health_check_key"]
    finally:
        get_settings.cache_clear()
    with pytest.raises(AttributeError):
        _ = fetch.NoSuchThing  # type: ignore[attr-defined]


def test_retry_job_doubles_the_delay_until_the_last_try() -> None:
    exc = ValueError("upstream")
    delays = []
    for tries in (1, 2, 3):
        with pytest.raises(Retry) as info:
            retry_job({"job_try": tries, "job_id": "j"}, exc, max_tries=4, first_delay=60)
        assert info.value.__cause__ is exc
        delays.append(info.value.defer_score)
    assert delays == [60_000, 120_000, 240_000]  # arq keeps the defer in milliseconds
    with pytest.raises(Retry) as info:
        retry_job({"job_try": 10}, exc, max_tries=20, first_delay=60)
    assert info.value.defer_score == 3_600_000  # capped
    assert retry_job({"job_try": 4}, exc, max_tries=4, first_delay=60) is None  # the last try
