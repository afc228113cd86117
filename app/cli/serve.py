"""The long-running verbs: `papershelf serve` (the site), `worker` (one arq pool) and `up`
(everything, under a supervisor)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from app.cli.console import fail
from app.cli.db import open_engine
from app.settings import get_settings

# uvicorn, arq and the pools' code are imported inside the commands: each loads only what it
# runs (and start-up stays fast, see app.cli.db); the ML pool only once torch and a
# checkpoint are known to be there, so that the CLI stays torch-free.

commands = typer.Typer()


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


@commands.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    reload: bool = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Web processes sharing the port (uvicorn's workers). Each keeps its own "
            "page cache and reloads the shared search indexes when a writer publishes.",
        ),
    ] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply migrations first.")] = True,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            help="Comma list of proxy IPs/CIDRs whose X-Forwarded-For and X-Forwarded-Proto "
            "are believed (default: PAPERSHELF_TRUSTED_PROXIES; none: the TCP peer is the "
            "client)."
        ),
    ] = None,
) -> None:
    """Serve the site and the API (no workers; see `papershelf up`)."""
    import os

    import uvicorn

    if trusted_proxies is not None:
        # The app reads its settings from the environment (reloader children included).
        os.environ["PAPERSHELF_TRUSTED_PROXIES"] = trusted_proxies
        get_settings.cache_clear()
    try:
        proxies = get_settings().trusted_proxies
    except ValueError as exc:  # pydantic's ValidationError names the bad entry
        raise fail(f"PAPERSHELF_TRUSTED_PROXIES: {exc}") from None
    open_engine(migrate=migrate)
    metrics_dir = None
    if workers > 1 and not reload:
        if not get_settings().redis_url:
            logging.getLogger(__name__).warning(
                "%d web processes without PAPERSHELF_REDIS_URL: each keeps its own rate-limit "
                "buckets, so a client may make %d times the configured requests",
                workers,
                workers,
            )
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            # /metrics then sums every process, whichever one answers the scrape.
            import tempfile

            metrics_dir = tempfile.mkdtemp(prefix="papershelf-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        _run_uvicorn(uvicorn, host, port, reload, workers, proxies)
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_uvicorn(
    uvicorn: Any, host: str, port: int, reload: bool, workers: int, proxies: list[str]
) -> None:
    from app.web.middleware import logging_config

    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        reload=reload,
        workers=None if reload else workers,
        # uvicorn would believe X-Forwarded-* from 127.0.0.1 by default: only listed proxies.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=",".join(proxies) if proxies else "",
        # One JSON access line per request comes from the app's middleware instead.
        access_log=False,
        log_config=logging_config(),
        # Open streams (the FAQ's server-sent events) must not hold a stop past `up`'s bound.
        timeout_graceful_shutdown=2,
    )


@commands.command()
def up(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run everything: the site, a fetch worker (and the ML worker when installed), with an
    embedded Redis when PAPERSHELF_REDIS_URL is unset. Ctrl+C stops it all."""
    from app.cli.runtime.supervisor import Supervisor

    _log_to_stderr()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    open_engine()  # migrate once, before any child starts
    raise typer.Exit(Supervisor(settings, host, port).run())


@commands.command()
def worker(
    pool: Annotated[
        str,
        typer.Option(
            help="Which pool: fetch, ml (the ML extra and a checkpoint) or llm (the FAQ; "
            "needs PAPERSHELF_LLM_BASE_URL)."
        ),
    ],
    burst: Annotated[bool, typer.Option(help="Run queued jobs, then exit.")] = False,
) -> None:
    """Run an arq worker for one pool."""
    _log_to_stderr()
    pool_settings = _pool_settings(pool)
    from arq.worker import get_kwargs

    from app.jobs.connections import redis_settings
    from workers.pool import ResilientWorker

    open_engine()
    kwargs: dict[str, Any] = {
        **get_kwargs(pool_settings),
        "redis_settings": redis_settings(get_settings().redis_url),
        "burst": burst,
    }
    ResilientWorker(**kwargs).run()


def _pool_settings(pool: str) -> Any:
    """One pool's arq settings (a class or a dict: arq's `get_kwargs` reads either), after
    checking that the pool can run here."""
    if pool == "fetch":
        from workers import fetch

        return fetch.WorkerSettings
    if pool == "ml":
        from app.cli.runtime.children import ml_unavailable

        if reason := ml_unavailable(get_settings()):
            raise fail(reason)
        from workers import ml

        return ml.WorkerSettings
    if pool == "llm":
        if not get_settings().llm_base_url:
            raise fail("the LLM pool needs an endpoint: set PAPERSHELF_LLM_BASE_URL")
        from workers import llm

        return llm.WorkerSettings
    raise fail(f"unknown pool {pool!r} (expected fetch, ml or llm)")
