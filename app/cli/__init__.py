"""The admin CLI: `papershelf …`. Exit codes: 0 success; 1 failure (nothing or not all
was done); 3 import finished but skipped invalid records (each reported with file:line).

One module per verb group, each a Typer app merged into `cli` here in the order `--help`
lists them; `console` is where every command writes, `db` how it reaches the store. The
commands parse options, call the layers below and print; the work itself lives there
(`app.reindex`, `app.jobs.backfill`, `app.importer`, ...). `runtime` is what `papershelf up`
runs: the supervisor of the child processes and the embedded Redis.

May import: everything below it (settings, the store, the domain, `app.jobs`) and the pools
it runs (`workers`). `ml` only inside the commands that need it, once torch is known to be
installed, so that the CLI stays torch-free. Nothing imports `app.cli` but the entry point
and the tests.
"""

from __future__ import annotations

import sys

import typer

from app.cli import alerts, fetch, imports, ml, reindex, search, serve, stats
from app.cli.db import db_cli

cli = typer.Typer(help="Papershelf admin commands.", no_args_is_help=True, add_completion=False)
for group in (imports, reindex, stats, search, serve, fetch, alerts, ml):
    cli.add_typer(group.commands)
cli.add_typer(db_cli, name="db")


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
