"""`papershelf stats`: what the store holds, per category, day and venue."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from app.cli.console import out
from app.cli.db import open_engine

commands = typer.Typer()


@commands.command()
def stats(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Papers per category and day, versions, venues."""
    # The store's queries load here, not at start-up (see app.cli.db).
    from app.db.queries import stats as read_stats

    with open_engine().connect() as conn:
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
