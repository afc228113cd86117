"""`papershelf reindex`: rebuild the search index, venue links and related keywords
(`app.reindex`), or the vector index (`app.vectors`), or back-fill TL;DRs, embeddings or
thumbnails through the ML pool (`app.jobs.backfill`), or, with --inline, here.

Long runs show their progress on stderr: a bar (steps, papers/s, time left) on a terminal,
and a plain line every PLAIN_EVERY_S seconds elsewhere (a log file, a pipe, a service)."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

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
# Without a terminal, a progress line this often (and one at the end).
PLAIN_EVERY_S = 10.0


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
    embeddings: Annotated[
        bool,
        typer.Option(
            "--embeddings",
            help="Instead: back-fill paper embeddings (title and abstract), queueing ML-pool "
            "jobs for the papers that lack a current one, newest first.",
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
    vectors: Annotated[
        bool,
        typer.Option(
            "--vectors",
            help="Instead: rebuild the vector index from the stored embeddings.",
        ),
    ] = False,
    inline: Annotated[
        bool,
        typer.Option(
            help="With --summaries, --embeddings or --thumbnails: compute here (the ML extra, "
            "and for TL;DRs and thumbnails a checkpoint, needed)."
        ),
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --summaries, --embeddings or --thumbnails: at most this many papers.",
        ),
    ] = None,
) -> None:
    """Rebuild the search index, re-link venue papers, and build the TF-IDF keywords behind
    [Related]; or, with --summaries, back-fill TL;DRs; with --embeddings, embeddings; with
    --thumbnails, thumbnails; with --vectors, rebuild the vector index."""
    backfills = {"--summaries": summaries, "--embeddings": embeddings, "--thumbnails": thumbnails}
    chosen = [name for name, on in {**backfills, "--vectors": vectors}.items() if on]
    if len(chosen) > 1:
        raise fail(f"{' and '.join(chosen)} are separate jobs: run one at a time")
    if (inline or limit is not None) and not any(backfills.values()):
        raise fail("--inline and --limit go with --summaries, --embeddings or --thumbnails")
    if summaries:
        _summaries(inline=inline, limit=limit)
        return
    if embeddings:
        _embeddings(inline=inline, limit=limit)
        return
    if thumbnails:
        _thumbnails(inline=inline, limit=limit)
        return
    if vectors:
        _vectors()
        return
    from app.reindex import build_related_keywords, rebuild_search_index

    engine = open_engine()
    linked = rebuild_search_index(engine)
    out.print(f"search index rebuilt; {linked} venue papers linked to arXiv")
    built = build_related_keywords(engine)
    out.print(f"related-paper keywords built for {built} papers")


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class _Rate(ProgressColumn):
    """Steps per second, over the last 30 s (rich's own speed estimate)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} {self.unit}/s" if speed else f"– {self.unit}/s")


class _Steps:
    """A long run's progress on stderr, `advance`d by steps (papers, vectors): a bar with
    steps, rate and time left on a terminal; elsewhere a plain line every PLAIN_EVERY_S
    seconds and one at the end, so a log shows it too. `total` None: no bar, no time left."""

    def __init__(self, label: str, total: int | None, unit: str = "papers") -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.shown = -1  # the steps the last plain line showed
        self.progress: Progress | None = None
        self.started = self.last_line = time.monotonic()

    def __enter__(self) -> _Steps:
        self.started = self.last_line = time.monotonic()
        if err.is_terminal:
            self.progress = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                _Rate(self.unit),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=self.total)
        return self

    def advance(self, n: int) -> None:
        self.reached(self.done + n)

    def reached(self, done: int) -> None:
        """Steps done so far (for callers that count them themselves)."""
        self.done = done
        if self.progress is not None:
            self.progress.update(self.task, completed=done)
            return
        now = time.monotonic()
        if now - self.last_line >= PLAIN_EVERY_S:
            self.last_line = now
            self._line(now)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.progress is not None:
            self.progress.stop()
        elif exc is None and self.done != self.shown:
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self.shown = self.done
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            parts = [
                f"{self.label}: {self.done:,}/{self.total:,} {self.unit} "
                f"({self.done / self.total:.0%})"
            ]
        else:
            parts = [f"{self.label}: {self.done:,} {self.unit}"]
        parts.append(f"{rate:,.1f} {self.unit}/s")
        parts.append(f"elapsed {_duration(elapsed)}")
        if self.total and rate and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        err.print(", ".join(parts), markup=False, highlight=False)


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

    with _Steps("TL;DRs", limit) as steps:
        done = summarize_inline(settings, engine, limit=limit, on_batch=steps.advance)
    out.print(
        f"{done['pending']} papers lacked a current TL;DR from {done['model']}; "
        f"{done['written']} written",
        markup=False,
    )


def _embeddings(*, inline: bool, limit: int | None) -> None:
    """`reindex --embeddings`: queue `embed_ids` jobs (or run them here with --inline)."""
    settings = get_settings()
    engine = open_engine()
    if inline:
        _embeddings_inline(settings, engine, limit=limit)
        return
    from app.jobs.backfill import backfill_embeddings
    from app.jobs.summaries import BACKLOG_EXPIRES

    done = _queue(
        settings,
        "embedding jobs",
        "embed here",
        lambda: backfill_embeddings(settings, engine, limit=limit),
    )
    out.print(
        f"{done.pending} papers lack a current embedding"
        + (
            f" from {done.model}"
            if done.model
            else " (no ML worker has announced its embedder: any embedding counts)"
        ),
        markup=False,
    )
    queued, already = done.queued.queued, done.queued.already
    out.print(
        f"queued {queued} embed_ids job{'s' if queued != 1 else ''} of up to "
        f"{done.per_job} papers on {settings.ml_queue}, newest papers first"
        + (f" ({already} were already queued)" if already else ""),
        markup=False,
    )
    if not done.enabled:
        err.print(
            "note: no ML worker has announced an embedder and the ML extra is not installed "
            f"here: the jobs wait in the queue (for up to {BACKLOG_EXPIRES.days} days) until "
            "`papershelf worker --pool ml` runs",
            markup=False,
            highlight=False,
        )


def _embeddings_inline(settings: Settings, engine: Engine, *, limit: int | None) -> None:
    from app.artifacts.embeddings import pending_count
    from app.jobs.embeddings import embedder_installed

    if not embedder_installed():
        raise fail("embeddings need the ML extra: pip install -e '.[ml]'")
    from workers.ml import models
    from workers.ml.embeddings import embed_inline

    err.print("loading the embedder…", markup=False, highlight=False)
    embedder = models.load_embedder(settings)
    with engine.connect() as conn:
        pending = pending_count(conn, embedder.version)
    total = min(pending, limit) if limit is not None else pending
    with _Steps("embeddings", total) as steps:
        done = embed_inline(
            settings, engine, limit=limit, embedder=embedder, on_batch=steps.advance
        )
    out.print(
        f"{done['pending']} papers lacked a current embedding from {done['model']} "
        f"({done['backend']}); {done['written']} written",
        markup=False,
    )
    if done.get("vectors"):
        out.print(
            f"vector index rebuilt with the new embeddings: {done['vectors']['count']} papers",
            markup=False,
        )


def _vectors() -> None:
    """`reindex --vectors`: the vector index, rebuilt from every stored embedding."""
    from app import vectors
    from app.artifacts.embeddings import stored_count

    settings = get_settings()
    engine = open_engine()
    with engine.connect() as conn:
        total = stored_count(conn)
    with _Steps("vector index", total, unit="vectors") as steps:
        # The index reports the vectors added so far.
        built = vectors.rebuild(settings, engine, on_batch=steps.reached)
    if not built["count"]:
        out.print(
            "vector index rebuilt, empty: no paper has an embedding yet (`papershelf reindex "
            "--embeddings`)",
            markup=False,
        )
        return
    kind = "an HNSW graph over them" if built["hnsw"] else "searched exactly"
    out.print(
        f"vector index rebuilt: {built['count']} papers, {built['dim']} dimensions "
        f"({kind}), in {built['path']}",
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

    with _Steps("thumbnails", limit) as steps:
        try:
            done = thumbnails_inline(settings, engine, limit=limit, on_batch=steps.advance)
        except RuntimeError as exc:
            raise fail(str(exc)) from None
    out.print(
        f"{done['pending']} papers lacked a current thumbnail (tokenizer {done['fsq']}, "
        f"diffusion {done['diffusion']}); {done['written']} written",
        markup=False,
    )
