"""`papershelf reindex`: rebuild the search index, venue links and related keywords
(`app.reindex`), or back-fill TL;DRs or thumbnails through the ML pool (`app.jobs.backfill`),
or, with --inline, here."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.console import err, fail, out
from app.cli.db import open_engine
from app.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

# The store, queue and artifact modules are imported inside the functions so that start-up
# stays fast (see app.cli.db); the ML pool's code (workers.ml, which loads torch with its
# models) only after torch and a checkpoint are known to be there.

commands = typer.Typer()
T = TypeVar("T")


@commands.command()
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
        raise fail("--inline and --limit go with --summaries or --thumbnails")
    if summaries and thumbnails:
        raise fail("--summaries and --thumbnails are separate back-fills: run one at a time")
    if summaries:
        _summaries(inline=inline, limit=limit)
        return
    if thumbnails:
        _thumbnails(inline=inline, limit=limit)
        return
    from app.reindex import build_related_keywords, rebuild_search_index

    engine = open_engine()
    linked = rebuild_search_index(engine)
    out.print(f"search index rebuilt; {linked} venue papers linked to arXiv")
    built = build_related_keywords(engine)
    out.print(f"related-paper keywords built for {built} papers")


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )


def _queue(
    settings: Settings, jobs: str, inline_does: str, backfill: Callable[[], Coroutine[Any, Any, T]]
) -> T:
    """Run a back-fill that queues `jobs` on the ML pool, or fail saying why it cannot."""
    if not settings.redis_url:
        raise fail(
            f"no Redis is configured (PAPERSHELF_REDIS_URL) to queue {jobs} on; "
            f"use --inline to {inline_does}"
        )
    from app.jobs.connections import QueueUnavailable

    try:
        return asyncio.run(backfill())
    except QueueUnavailable as exc:
        raise fail(f"cannot queue {jobs}: {exc}") from None


def _summaries(*, inline: bool, limit: int | None) -> None:
    """`reindex --summaries`: queue `summarize_ids` jobs (or run them here with --inline)."""
    settings = get_settings()
    engine = open_engine()
    if inline:
        _summaries_inline(settings, engine, limit=limit)
        return
    from app.jobs.backfill import backfill_summaries
    from app.jobs.summaries import BACKLOG_EXPIRES

    done = _queue(
        settings,
        "TL;DR jobs",
        "summarise here",
        lambda: backfill_summaries(settings, engine, limit=limit),
    )
    counts, queued = done.counts, done.queued.queued
    by_model = (
        f"{counts.model_version} by a model other than {done.model}"
        if done.model
        else "no ML worker has announced its model, so older models' TL;DRs are not counted"
    )
    out.print(
        f"{counts.total} papers lack a current TL;DR: {counts.missing} have none, "
        f"{counts.paper_version} were written for another paper version; {by_model}",
        markup=False,
    )
    already = done.queued.already
    out.print(
        f"queued {queued} summarize_ids job{'s' if queued != 1 else ''} of up to "
        f"{done.per_job} papers on {settings.ml_queue}, "
        f"newest papers first" + (f" ({already} were already queued)" if already else ""),
        markup=False,
    )
    if not done.enabled:
        err.print(
            f"note: no ML worker has announced itself and there is no summarizer checkpoint at "
            f"{settings.summarizer_path_resolved}: the jobs wait in the queue (for up to "
            f"{BACKLOG_EXPIRES.days} days) until `papershelf worker --pool ml` runs",
            markup=False,
            highlight=False,
        )


def _summaries_inline(settings: Settings, engine: Engine, *, limit: int | None) -> None:
    from app.artifacts.summaries import checkpoint_present, missing_checkpoint
    from app.cli.runtime.children import ml_unavailable

    if reason := ml_unavailable(settings):
        raise fail(reason)
    if not checkpoint_present(settings.summarizer_path_resolved):
        raise fail(missing_checkpoint(settings.summarizer_path_resolved))
    from workers.ml.summaries import summarize_inline

    with _progress("TL;DRs") as progress:
        task = progress.add_task("tldr", total=limit)
        done = summarize_inline(
            settings, engine, limit=limit, on_batch=lambda n: progress.advance(task, n)
        )
    out.print(
        f"{done['pending']} papers lacked a current TL;DR from {done['model']}; "
        f"{done['written']} written",
        markup=False,
    )


def _thumbnails(*, inline: bool, limit: int | None) -> None:
    """`reindex --thumbnails`: queue `thumbnails_for_ids` jobs (or run them here)."""
    settings = get_settings()
    engine = open_engine()
    if inline:
        _thumbnails_inline(settings, engine, limit=limit)
        return
    from app.jobs.backfill import backfill_thumbnails

    done = _queue(
        settings,
        "thumbnail jobs",
        "make them here",
        lambda: backfill_thumbnails(settings, engine, limit=limit),
    )
    out.print(
        f"{done.pending} papers lack a current thumbnail"
        + (
            ""
            if done.announced
            else " (no ML worker has announced its models: any thumbnail counts)"
        ),
        markup=False,
    )
    queued, already = done.queued.queued, done.queued.already
    out.print(
        f"queued {queued} thumbnails_for_ids job{'s' if queued != 1 else ''} of up to "
        f"{done.per_job} papers on {settings.ml_queue}, newest papers first"
        + (f" ({already} were already queued)" if already else ""),
        markup=False,
    )
    if not done.enabled:
        err.print(
            "note: no ML worker has announced a picture model and there is no FSQ or diffusion "
            "checkpoint here: the jobs wait in the queue until `papershelf worker --pool ml` runs",
            markup=False,
            highlight=False,
        )


def _thumbnails_inline(settings: Settings, engine: Engine, *, limit: int | None) -> None:
    from app.jobs.pictures import models_present

    if importlib.util.find_spec("torch") is None:
        raise fail("thumbnails need the ML extra: pip install -e '.[ml]'")
    if not models_present(settings):
        raise fail(
            f"no picture model: neither an FSQ tokenizer at {settings.fsq_path_resolved} "
            f"nor a diffusion model at {settings.diffusion_path_resolved} (run `papershelf "
            "ml train-fsq` or `papershelf ml train-diffusion`)"
        )
    from workers.ml.pictures import thumbnails_inline

    with _progress("thumbnails") as progress:
        task = progress.add_task("thumbnails", total=limit)
        try:
            done = thumbnails_inline(
                settings, engine, limit=limit, on_batch=lambda n: progress.advance(task, n)
            )
        except RuntimeError as exc:
            raise fail(str(exc)) from None
    out.print(
        f"{done['pending']} papers lacked a current thumbnail (tokenizer {done['fsq']}, "
        f"diffusion {done['diffusion']}); {done['written']} written",
        markup=False,
    )
