"""What the `papershelf ml` commands (ml.cli and the model packages' `cli` modules) share:
the output and error consoles, the error exit, progress bars and their reporter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print the error and return the exit to raise (`raise fail(...)`)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(1)


def data_path(option: Path | None, default: Path, name: str) -> Path:
    """`--<name>`, else `default`; it must exist."""
    path = option or default
    if not path.exists():
        raise fail(f"{path} not found (pass --{name} or put the data there)")
    return path


class BarReporter:
    """Rich progress bars for the training and evaluation loops' reporters."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def phase(self, name: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=True)
        self.task = self.progress.add_task(name, total=total, info="")

    def advance(self, n: int = 1, **info: float) -> None:
        text = " ".join(f"{k} {v:.3f}" for k, v in info.items())
        self.progress.update(self.task, advance=n, info=text)

    def log(self, message: str) -> None:
        self.progress.console.print(message, markup=False, highlight=False)


def progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=err,
        transient=False,
    )
