"""The admin CLI: `papershelf …`. Exit codes: 0 success; 1 failure (nothing or not all
was done); 3 import finished but skipped invalid records (each reported with file:line)."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.settings import get_settings

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
def reindex() -> None:
    """Rebuild the search index, re-link venue papers, and build the TF-IDF keywords behind
    [Related]."""
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
    pool: Annotated[str, typer.Option(help="Which pool: fetch (or ml, with the ML extra).")],
    burst: Annotated[bool, typer.Option(help="Run queued jobs, then exit.")] = False,
) -> None:
    """Run an arq worker for one pool."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if pool == "fetch":
        from workers.fetch import WorkerSettings, redis_settings
    elif pool == "ml":
        raise _fail("the ML pool is not part of this version yet")
    else:
        raise _fail(f"unknown pool {pool!r} (expected fetch or ml)")
    from arq.worker import get_kwargs

    from workers.fetch import ResilientWorker

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


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
