"""`papershelf import`: arXiv data and venue lists from files, with a report per file."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.console import err, fail, out
from app.cli.db import open_engine
from app.settings import get_settings

# Import finished, but invalid records were skipped (each reported with file:line).
EXIT_PARTIAL = 3

commands = typer.Typer()


@commands.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Files in any supported format (.gz ok).")],
    venue: Annotated[str | None, typer.Option(help="Import venue lists under this name.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, max=20000)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    defer_index: Annotated[
        bool | None,
        typer.Option(
            "--defer-index/--no-defer-index",
            help="Build the database's search index once after the load, rather than page by "
            "page. Default: when the files hold at least PAPERSHELF_IMPORT_DEFER_INDEX_SHARE "
            "(0.25) of the papers stored.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Import arXiv data (API Atom, OAI-PMH, RSS/Atom feeds, JSON Lines, Kaggle snapshot) or
    venue lists; the format is detected from the content.

    A large load builds the database's search index once at the end; an import killed before
    then leaves that build pending, and the next import (or `papershelf reindex`) does it."""
    # The parsers and the store load here, not at start-up (see app.cli.db).
    from app.importer import bulk_load, expected_papers, import_file, should_defer_index

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise fail(f"no such file: {', '.join(missing)}")
    engine = open_engine()
    settings = get_settings()
    size = batch_size or settings.import_batch_size
    if defer_index is None:
        defer_index = venue is None and should_defer_index(
            engine, expected_papers(files), settings.import_defer_index_share
        )
    reports = []
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=as_json or not err.is_terminal,
        ) as progress,
        bulk_load(engine, defer_index=defer_index),
    ):
        if defer_index and not as_json:
            err.print("search index: built once after the load", highlight=False)
        for path in files:
            task = progress.add_task(path.name, total=None)
            reports.append(
                import_file(
                    engine,
                    path,
                    venue=venue,
                    batch_size=size,
                    on_page=partial(progress.advance, task),
                )
            )
    if any(r.papers for r in reports):
        # The searches that follow find the papers at once, without indexing them inline.
        from app.search import fulltext

        indexed = fulltext.sync(get_settings(), engine)
        if not as_json:
            err.print(f"search index: {indexed} papers indexed", highlight=False)
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
