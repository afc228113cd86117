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
    """Rebuild the search index from the store and re-link venue papers."""
    from app.db import store
    from app.search.backend import backend_for

    engine = _engine()
    with engine.begin() as conn:
        backend_for(conn).rebuild(conn)
        linked = store.link_venues(conn)
    out.print(f"search index rebuilt; {linked} venue papers linked to arXiv")


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
        out.print_json(
            json.dumps(
                {
                    "query": query,
                    "total": page.total,
                    "warnings": list(page.warnings),
                    "hits": [
                        {
                            "arxiv_id": h.arxiv_id,
                            "title": h.title,
                            "score": h.score,
                            "date": h.sort_date.isoformat() if h.sort_date else None,
                        }
                        for h in page.hits
                    ],
                }
            )
        )
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
) -> None:
    """Serve the site and the API."""
    import uvicorn

    _engine()  # migrate before taking requests
    uvicorn.run("app.main:app", host=host, port=port, reload=reload)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
