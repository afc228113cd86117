"""The admin CLI: `papershelf …`. Exit codes: 0 success; 1 failure (nothing or not all
was done); 3 import finished but skipped invalid records (each reported with file:line)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.settings import Settings, get_settings

cli = typer.Typer(help="Papershelf admin commands.", no_args_is_help=True, add_completion=False)
db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_PARTIAL = 3


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(1)


def _engine(*, migrate: bool = True):  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import SQLAlchemyError

    from app.db.engine import get_engine
    from app.db.migrate import upgrade

    settings = get_settings()
    try:
        engine = get_engine(settings)
        if migrate:
            upgrade(settings.database_url_resolved)
    except SQLAlchemyError as exc:
        raise _fail(
            f"database {settings.database_url_resolved!r}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    return engine


@db_cli.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from app.db.migrate import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url_resolved, revision)
    out.print(f"database at {revision}")


@db_cli.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (`base` empties the schema)."""
    from app.db.migrate import downgrade

    downgrade(get_settings().database_url_resolved, revision)
    out.print(f"database at {revision}")


@db_cli.command("current")
def db_current() -> None:
    """Print the schema revision the database is at."""
    from app.db.migrate import current

    out.print(current(_engine(migrate=False)) or "base (empty)")


@cli.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Files in any supported format (.gz ok).")],
    venue: Annotated[str | None, typer.Option(help="Import venue lists under this name.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, max=20000)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import arXiv data (API Atom, OAI-PMH, RSS/Atom feeds, JSON Lines, Kaggle snapshot) or
    venue lists; the format is detected from the content."""
    from app.importer import import_file

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise _fail(f"no such file: {', '.join(missing)}")
    engine = _engine()
    size = batch_size or get_settings().import_batch_size
    reports = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=as_json or not err.is_terminal,
    ) as progress:
        for path in files:
            task = progress.add_task(path.name, total=None)
            reports.append(
                import_file(
                    engine,
                    path,
                    venue=venue,
                    batch_size=size,
                    on_page=lambda n, t=task: progress.advance(t, n),
                )
            )
    if as_json:
        out.print_json(json.dumps([r.to_json() for r in reports]))
    else:
        for r in reports:
            if r.failed:
                if r.papers or r.venue_papers:
                    err.print(
                        f"stopped: {r.failed}; the {r.papers + r.venue_papers} records before "
                        "that point were imported (re-running the import is safe)",
                        markup=False,
                    )
                else:
                    err.print(f"rejected {r.failed} (nothing imported from it)", markup=False)
                continue
            what = (
                f"{r.venue_papers} venue papers"
                if r.format == "venue-json"
                else f"{r.papers} papers: {r.inserted} new, {r.updated} updated, "
                f"{r.unchanged} unchanged; {r.announcements} new announcements"
            )
            out.print(f"{r.path} ({r.format}) {what}; {r.linked} venue links", markup=False)
            for e in r.errors[:20]:
                err.print(f"  skipped {e}", markup=False, highlight=False)
            if len(r.errors) > 20:
                err.print(f"  … and {len(r.errors) - 20} more skipped records")
    if any(r.failed for r in reports):
        raise typer.Exit(1)
    if any(r.errors for r in reports):
        raise typer.Exit(EXIT_PARTIAL)


@cli.command()
def reindex(
    summaries: Annotated[
        bool,
        typer.Option(
            "--summaries",
            help="Instead: back-fill TL;DRs, queueing ML-pool jobs for the papers that lack a "
            "current one, newest first.",
        ),
    ] = False,
    thumbnails: Annotated[
        bool,
        typer.Option(
            "--thumbnails",
            help="Instead: back-fill paper thumbnails (FSQ tokens of the PDF, or a generated "
            "placeholder), queueing ML-pool jobs for the papers that lack a current one.",
        ),
    ] = False,
    inline: Annotated[
        bool,
        typer.Option(
            help="With --summaries or --thumbnails: compute here (ML extra and checkpoint needed)."
        ),
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="With --summaries or --thumbnails: at most this many papers."),
    ] = None,
) -> None:
    """Rebuild the search index, re-link venue papers, and build the TF-IDF keywords behind
    [Related]; or, with --summaries, back-fill TL;DRs; or, with --thumbnails, thumbnails."""
    if (inline or limit is not None) and not (summaries or thumbnails):
        raise _fail("--inline and --limit go with --summaries or --thumbnails")
    if summaries and thumbnails:
        raise _fail("--summaries and --thumbnails are separate back-fills: run one at a time")
    if summaries:
        _reindex_summaries(inline=inline, limit=limit)
        return
    if thumbnails:
        _reindex_thumbnails(inline=inline, limit=limit)
        return
    from app import related
    from app.db import store
    from app.search.backend import backend_for

    engine = _engine()
    with engine.begin() as conn:
        backend_for(conn).rebuild(conn)
        linked = store.link_venues(conn)
    out.print(f"search index rebuilt; {linked} venue papers linked to arXiv")
    with engine.begin() as conn:
        built = related.build(conn)
    out.print(f"related-paper keywords built for {built} papers")


def _reindex_summaries(*, inline: bool, limit: int | None) -> None:
    """`reindex --summaries`: queue `summarize_ids` jobs (or run them here with --inline)."""
    import asyncio

    from app import summaries as tldrs
    from app.supervisor import ml_unavailable

    settings = get_settings()
    engine = _engine()
    if inline:
        if reason := ml_unavailable(settings):
            raise _fail(reason)
        if not tldrs.checkpoint_present(settings.summarizer_path_resolved):
            raise _fail(tldrs.missing_checkpoint(settings.summarizer_path_resolved))
        # Only now, with torch and a checkpoint known to be there: app.cli stays torch-free.
        from ml.worker import summarize_inline

        with Progress(
            TextColumn("TL;DRs"),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not err.is_terminal,
        ) as progress:
            task = progress.add_task("tldr", total=limit)
            done = summarize_inline(
                settings, engine, limit=limit, on_batch=lambda n: progress.advance(task, n)
            )
        out.print(
            f"{done['pending']} papers lacked a current TL;DR from {done['model']}; "
            f"{done['written']} written",
            markup=False,
        )
        return
    if not settings.redis_url:
        raise _fail(
            "no Redis is configured (PAPERSHELF_REDIS_URL) to queue TL;DR jobs on; "
            "use --inline to summarise here"
        )
    from arq import create_pool
    from redis.exceptions import RedisError

    from workers import fetch as jobs
    from workers import summaries as ml_jobs

    per_job = ml_jobs.ids_per_job(settings)

    async def queue_jobs() -> tuple[str | None, bool, tldrs.PendingCounts, int, int]:
        redis = await create_pool(jobs.redis_settings(settings.redis_url))
        try:
            # The model a running ML worker announced; without one, TL;DRs of any model
            # count as current here (the jobs re-check against the real model anyway).
            model = await ml_jobs.announced_model(redis, settings)
            enabled = await ml_jobs.ml_pool_enabled(redis, settings)
            with engine.connect() as conn:
                counts = tldrs.pending_counts(conn, model)
            with engine.connect() as conn:
                ids = tldrs.pending_ids(conn, model, limit=limit)
                queued, already = await _queue_ids(redis, settings, ids, per_job, ml_jobs)
        finally:
            await redis.aclose()
        return model, enabled, counts, queued, already

    try:
        model, enabled, counts, queued, already = asyncio.run(queue_jobs())
    except (RedisError, OSError) as exc:
        raise _fail(f"cannot queue TL;DR jobs: Redis is unreachable ({exc})") from None
    by_model = (
        f"{counts.model_version} by a model other than {model}"
        if model
        else "no ML worker has announced its model, so older models' TL;DRs are not counted"
    )
    out.print(
        f"{counts.total} papers lack a current TL;DR: {counts.missing} have none, "
        f"{counts.paper_version} were written for another paper version; {by_model}",
        markup=False,
    )
    out.print(
        f"queued {queued} summarize_ids job{'s' if queued != 1 else ''} of up to {per_job} "
        f"papers on {settings.ml_queue}, "
        f"newest papers first" + (f" ({already} were already queued)" if already else ""),
        markup=False,
    )
    if not enabled:
        err.print(
            f"note: no ML worker has announced itself and there is no summarizer checkpoint at "
            f"{settings.summarizer_path_resolved}: the jobs wait in the queue (for up to "
            f"{ml_jobs.BACKLOG_EXPIRES.days} days) until `papershelf worker --pool ml` runs",
            markup=False,
            highlight=False,
        )


def _reindex_thumbnails(*, inline: bool, limit: int | None) -> None:
    """`reindex --thumbnails`: queue `thumbnails_for_ids` jobs (or run them here)."""
    import asyncio
    import importlib.util

    from app import thumbnails as thumbs
    from workers import pictures

    settings = get_settings()
    engine = _engine()
    if inline:
        if importlib.util.find_spec("torch") is None:
            raise _fail("thumbnails need the ML extra: pip install -e '.[ml]'")
        if not pictures.models_present(settings):
            raise _fail(
                f"no picture model: neither an FSQ tokenizer at {settings.fsq_path_resolved} "
                f"nor a diffusion model at {settings.diffusion_path_resolved} (run `papershelf "
                "ml train-fsq` or `papershelf ml train-diffusion`)"
            )
        # Only now, with torch and a checkpoint known to be there: app.cli stays torch-free.
        from ml.pictures import thumbnails_inline

        with Progress(
            TextColumn("thumbnails"),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not err.is_terminal,
        ) as progress:
            task = progress.add_task("thumbnails", total=limit)
            try:
                done = thumbnails_inline(
                    settings, engine, limit=limit, on_batch=lambda n: progress.advance(task, n)
                )
            except RuntimeError as exc:
                raise _fail(str(exc)) from None
        out.print(
            f"{done['pending']} papers lacked a current thumbnail (tokenizer {done['fsq']}, "
            f"diffusion {done['diffusion']}); {done['written']} written",
            markup=False,
        )
        return
    if not settings.redis_url:
        raise _fail(
            "no Redis is configured (PAPERSHELF_REDIS_URL) to queue thumbnail jobs on; "
            "use --inline to make them here"
        )
    from arq import create_pool
    from redis.exceptions import RedisError

    from workers import fetch as jobs

    async def queue_jobs() -> tuple[dict[str, Any] | None, bool, int, int, int]:
        redis = await create_pool(jobs.redis_settings(settings.redis_url))
        try:
            # The models a running ML worker announced; without one, any thumbnail counts as
            # current here (the jobs re-check against the real models anyway).
            found = await pictures.announced(redis, settings)
            enabled = await pictures.thumbnails_enabled(redis, settings)
            # The versions the worker writes with (its solver may fall back to iPNDM).
            current = (found or {}).get("thumbnails") or {}
            models = thumbs.Models(
                fsq=current.get("fsq"),
                diffusion=current.get("diffusion"),
                solver=current.get("solver", settings.thumbnail_solver),
                nfe=current.get("nfe", settings.thumbnail_nfe),
                pdf_retry_before=(
                    datetime.now(UTC) - timedelta(days=days)
                    if (days := current.get("pdf_retry_days"))
                    else None
                ),
            )
            with engine.connect() as conn:
                count = thumbs.pending_count(conn, models)
            with engine.connect() as conn:
                ids = thumbs.pending_ids(conn, models, limit=limit)
                queued, already = await _queue_ids(
                    redis, settings, ids, pictures.IDS_PER_JOB, pictures
                )
        finally:
            await redis.aclose()
        return found, enabled, count, queued, already

    try:
        found, enabled, count, queued, already = asyncio.run(queue_jobs())
    except (RedisError, OSError) as exc:
        raise _fail(f"cannot queue thumbnail jobs: Redis is unreachable ({exc})") from None
    out.print(
        f"{count} papers lack a current thumbnail"
        + ("" if found else " (no ML worker has announced its models: any thumbnail counts)"),
        markup=False,
    )
    out.print(
        f"queued {queued} thumbnails_for_ids job{'s' if queued != 1 else ''} of up to "
        f"{pictures.IDS_PER_JOB} papers on {settings.ml_queue}, newest papers first"
        + (f" ({already} were already queued)" if already else ""),
        markup=False,
    )
    if not enabled:
        err.print(
            "note: no ML worker has announced a picture model and there is no FSQ or diffusion "
            "checkpoint here: the jobs wait in the queue until `papershelf worker --pool ml` runs",
            markup=False,
            highlight=False,
        )


async def _queue_ids(
    redis: Any, settings: Settings, ids: Iterable[str], per_job: int, queuer: Any
) -> tuple[int, int]:
    """Queue back-fill jobs of `per_job` ids, newest first (rank order); `queuer` is the
    module whose `ids_request` builds the job. Returns (queued, already queued)."""
    from app.summaries import batched
    from workers.fetch import submit

    queued = already = 0
    start = datetime.now(UTC)
    for rank, chunk in enumerate(batched(ids, per_job)):
        request = queuer.ids_request(chunk, rank=rank, start=start)
        if await submit(redis, settings, request) is None:
            already += 1
        else:
            queued += 1
    return queued, already


@cli.command()
def stats(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Papers per category and day, versions, venues."""
    from app.db.queries import stats as read_stats

    with _engine().connect() as conn:
        s = read_stats(conn)
    if as_json:
        out.print_json(json.dumps(s.to_json()))
        return
    out.print(
        f"{s.papers} papers, {s.versions} versions, {s.announcements} announcements over "
        f"{s.days} days ({s.first_day or '-'} … {s.last_day or '-'})"
    )
    table = Table("category", "papers", title="Papers per category (top 15)")
    for cat, n in list(s.categories.items())[:15]:
        table.add_row(cat, str(n))
    out.print(table)
    if s.latest_days:
        days = Table("day", "announcements by category", title="Latest days")
        for day, cats in s.latest_days.items():
            days.add_row(day, ", ".join(f"{c} {n}" for c, n in list(cats.items())[:8]))
        out.print(days)
    if s.venues:
        venues = Table("venue", "papers", "on arXiv", title="Venues")
        for name, v in s.venues.items():
            venues.add_row(name, str(v["papers"]), str(v["linked_to_arxiv"]))
        out.print(venues)


@cli.command()
def search(
    query: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    category: Annotated[list[str] | None, typer.Option("--category", "-c")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD")] = None,
    sort: Annotated[str, typer.Option(help="relevance or date")] = "relevance",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the store with the site's query syntax."""
    from app.search.backend import search_papers

    if sort not in ("relevance", "date"):
        raise _fail("--sort must be 'relevance' or 'date'")
    try:
        d_from = date.fromisoformat(date_from) if date_from else None
        d_to = date.fromisoformat(date_to) if date_to else None
    except ValueError as exc:
        raise _fail(f"invalid date: {exc}") from None
    with _engine().connect() as conn:
        page = search_papers(
            conn,
            query,
            categories=category or (),
            date_from=d_from,
            date_to=d_to,
            sort=sort,  # type: ignore[arg-type]
            limit=limit,
            offset=offset,
        )
    if as_json:
        out.print_json(json.dumps({"query": query, **page.to_json()}))
        return
    for w in page.warnings:
        err.print(f"[yellow]note:[/] {escape(w)}", highlight=False)
    for h in page.hits:
        out.print(f"{h.arxiv_id:>16}  {h.sort_date}  {h.title}", markup=False, highlight=False)
    out.print(f"{len(page.hits)} shown of {page.total} matches")


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    reload: bool = False,
    migrate: Annotated[bool, typer.Option(help="Apply migrations first.")] = True,
) -> None:
    """Serve the site and the API (no workers; see `papershelf up`)."""
    import uvicorn

    _engine(migrate=migrate)
    uvicorn.run("app.main:app", host=host, port=port, reload=reload)


@cli.command()
def up(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run everything: the site, a fetch worker (and the ML worker when installed), with an
    embedded Redis when PAPERSHELF_REDIS_URL is unset. Ctrl+C stops it all."""
    import logging

    from app.supervisor import Supervisor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _engine()  # migrate once, before any child starts
    raise typer.Exit(Supervisor(settings, host, port).run())


@cli.command()
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
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if pool == "fetch":
        from workers.fetch import WorkerSettings
    elif pool == "ml":
        from app.supervisor import ml_unavailable

        if reason := ml_unavailable(get_settings()):
            raise _fail(reason)
        from ml.worker import WorkerSettings  # type: ignore[assignment]
    elif pool == "llm":
        if not get_settings().llm_base_url:
            raise _fail("the LLM pool needs an endpoint: set PAPERSHELF_LLM_BASE_URL")
        from workers.llm import WorkerSettings  # type: ignore[assignment]
    else:
        raise _fail(f"unknown pool {pool!r} (expected fetch, ml or llm)")
    from arq.worker import get_kwargs

    from workers.fetch import ResilientWorker, redis_settings

    _engine()
    ResilientWorker(
        **{
            **get_kwargs(WorkerSettings),
            "redis_settings": redis_settings(get_settings().redis_url),
            "burst": burst,
        }
    ).run()


def _run_job(function: str, *args: object) -> dict:  # type: ignore[type-arg]
    """Run one fetch job in this process (what `--now` means), with the worker's context."""
    import asyncio

    from arq import create_pool

    from workers import fetch

    async def go() -> dict:  # type: ignore[type-arg]
        redis = await create_pool(fetch.redis_settings(get_settings().redis_url))
        ctx: dict = {"redis": redis, "job_id": f"cli:{function}", "job_try": fetch.MAX_TRIES}
        await fetch.startup(ctx)
        try:
            return await getattr(fetch, function)(ctx, *args)
        finally:
            await fetch.shutdown(ctx)
            await redis.aclose()

    return asyncio.run(go())


@cli.command()
def fetch(
    category: Annotated[str, typer.Argument(help="A category (cs.CL) or comma-joined arXiv ids.")],
    date_from: Annotated[
        str | None, typer.Option("--date", "--from", help="Back-fill from this day (OAI-PMH).")
    ] = None,
    date_until: Annotated[str | None, typer.Option("--until")] = None,
    now: Annotated[bool, typer.Option("--now", help="Run here instead of enqueueing.")] = False,
) -> None:
    """Fetch today's list of CATEGORY (rss.arxiv.org), back-fill it over a date range
    (OAI-PMH), or fetch papers by id (the query API)."""
    import asyncio

    from app.ingest.ids import InvalidArxivId, split_id_list
    from app.taxonomy import get_taxonomy
    from workers import fetch as jobs

    canonical = get_taxonomy().canonical(category)
    if canonical is None:
        try:
            ids = [i for i, _v in split_id_list(category)]
        except InvalidArxivId as exc:
            raise _fail(f"{category!r} is neither a known category nor arXiv ids: {exc}") from None
        request = jobs.ids_request(ids)
    elif date_from:
        try:
            d_from = date.fromisoformat(date_from)
            d_until = date.fromisoformat(date_until) if date_until else d_from
        except ValueError as exc:
            raise _fail(f"invalid date: {exc}") from None
        if d_until < d_from:
            raise _fail("--until is before --from")
        request = jobs.backfill_request(jobs.oai_set(canonical), d_from, d_until)
    else:
        request = jobs.listing_request(canonical)
    _engine()
    if now:
        try:
            result = _run_job(request.function, *request.args)
        except Exception as exc:
            raise _fail(f"{type(exc).__name__}: {exc}") from None
        out.print_json(json.dumps(result, default=str))
        return
    settings = get_settings()
    try:
        queued = asyncio.run(jobs.enqueue(settings, request))
    except jobs.QueueUnavailable as exc:
        raise _fail(f"cannot queue {request.function}: {exc}; use --now to run it here") from None
    job_id = jobs.scoped_job_id(settings, request.job_id)
    out.print(f"queued {request.function} as {job_id}" if queued else f"{job_id} is already queued")


@cli.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Fetch health: per followed category the latest day and its completeness check, recent
    runs and errors, the next announcement."""
    from datetime import UTC, datetime

    from app.db import runs
    from app.schedule import parse_holidays

    settings = get_settings()
    with _engine().connect() as conn:
        summary = runs.status_summary(
            conn,
            categories=settings.categories,
            now=datetime.now(UTC),
            holidays=parse_holidays(settings.arxiv_holidays),
        )
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    nxt = summary["next_announcement"]
    out.print(
        f"{summary['papers']} papers; latest arXiv list {summary['latest_listing_day']}; next "
        f"announcement {nxt['at']:%Y-%m-%d %H:%M} UTC (list of {nxt['listing_day']})"
    )
    if summary["upcoming_holidays"]:
        out.print("arXiv holidays ahead: " + ", ".join(map(str, summary["upcoming_holidays"])))
    table = Table("category", "latest day", "papers", "feed vs stored", "last ok", "last error")
    for cat, c in summary["categories"].items():
        check = c["check"]
        failed = c["last_failed"]
        table.add_row(
            cat,
            str(c["latest_day"] or "-"),
            str(c["latest_day_count"] or 0),
            f"{check['stored_count']}/{check['feed_count']} on {check['day']}" if check else "-",
            f"{c['last_ok']['started_at']:%m-%d %H:%M}" if c["last_ok"] else "-",
            f"{failed['started_at']:%m-%d %H:%M} {failed['error'] or ''}"[:60] if failed else "-",
        )
    out.print(table)


@cli.command(
    "ml",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def ml(ctx: typer.Context) -> None:
    """Train, evaluate and run the ML models (needs the ML extra): `papershelf ml --help`."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise _fail("the ML commands need the ML extra: pip install -e '.[ml]'")
    # Imported here, not at the top: the rest of the CLI must not load torch.
    from ml.cli import main as ml_main

    ml_main(list(ctx.args))


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
