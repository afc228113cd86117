"""Where the CLI writes: `out` for results (stdout), `err` for notes, progress and errors
(stderr), and `fail`, the one way a command reports an error and exits 1."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print `message` as an error; the caller raises the returned exit (code 1)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(1)
