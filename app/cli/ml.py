"""`papershelf ml …`: hands its arguments to the ML command line (`ml.cli`), which needs the
ML extra, with the paths its options fall back to taken from the settings (`ml_defaults`)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import typer

from app.cli.console import fail
from app.settings import Settings, get_settings

if TYPE_CHECKING:
    from ml.cli import Defaults

commands = typer.Typer()


def ml_defaults(settings: Settings) -> Defaults:
    """Where `papershelf ml` looks when an option is left out: this deployment's paths."""
    from ml.cli import Defaults

    return Defaults(
        data_dir=settings.data_dir,
        summarizer=settings.summarizer_path_resolved,
        fsq=settings.fsq_path_resolved,
        diffusion=settings.diffusion_path_resolved,
        lab_diffusion=settings.lab_diffusion_path_resolved,
    )


@commands.command(
    "ml",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def ml(ctx: typer.Context) -> None:
    """Train, evaluate and run the ML models (needs the ML extra): `papershelf ml --help`."""
    if importlib.util.find_spec("torch") is None:
        raise fail("the ML commands need the ML extra: pip install -e '.[ml]'")
    # Imported here, not at the top: the rest of the CLI must not load torch.
    from ml.cli import main as ml_main

    ml_main(list(ctx.args), ml_defaults(get_settings()))
