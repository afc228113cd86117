"""`papershelf search`: the site's search, from the command line."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer
from rich.markup import escape

from app.cli.console import err, fail, out
from app.cli.db import open_engine

commands = typer.Typer()


@commands.command()
def search(
    query: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    category: Annotated[list[str] | None, typer.Option("--category", "-c")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD")] = None,
    sort: Annotated[str, typer.Option(help="relevance or date")] = "relevance",
    mode: Annotated[
        str | None,
        typer.Option(
            help="keyword, semantic or hybrid (default: hybrid once papers have embeddings)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the store with the site's query syntax."""
    # The search backends load here, not at start-up (see app.cli.db).
    from app.hybrid import MODES, search

    if sort not in ("relevance", "date"):
        raise fail("--sort must be 'relevance' or 'date'")
    if mode is not None and mode not in MODES:
        raise fail("--mode must be 'keyword', 'semantic' or 'hybrid'")
    try:
        d_from = date.fromisoformat(date_from) if date_from else None
        d_to = date.fromisoformat(date_to) if date_to else None
    except ValueError as exc:
        raise fail(f"invalid date: {exc}") from None
    with open_engine().connect() as conn:
        page = search(
            conn,
            query,
            mode=mode,
            categories=category or (),
            date_from=d_from,
            date_to=d_to,
            sort=sort,  # type: ignore[arg-type]  # checked above: "relevance" or "date"
            limit=limit,
            offset=offset,
        )
    if as_json:
        out.print_json(json.dumps({"query": query, **page.to_json()}))
        return
    for w in [*page.warnings, *page.notices]:
        err.print(f"[yellow]note:[/] {escape(w)}", highlight=False)
    for h in page.hits:
        out.print(f"{h.arxiv_id:>16}  {h.sort_date}  {h.title}", markup=False, highlight=False)
    out.print(f"{len(page.hits)} shown of {page.total} matches ({page.mode})")
