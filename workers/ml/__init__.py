"""The ML pool: `papershelf worker --pool ml` (or `arq workers.ml.WorkerSettings`) writes
TL;DRs into `summaries`, embeddings into `paper_embeddings` and thumbnails into
`thumbnails`, and answers the picture API's jobs, on its own queue (PAPERSHELF_ML_QUEUE).

The models load once, at start-up: the summarizer from PAPERSHELF_SUMMARIZER_PATH, the FSQ
tokenizer and the diffusion model from PAPERSHELF_FSQ_PATH and PAPERSHELF_DIFFUSION_PATH
(ml.pictures), onto PAPERSHELF_SUMMARIZER_DEVICE; the embedder (the packaged MiniLM,
ml.embeddings, no checkpoint needed) onto PAPERSHELF_EMBEDDINGS_DEVICE (unset: the same).
Any one of them is enough to start; a job whose model is missing says so (the TL;DR and
embedding jobs skip, the picture jobs answer with the reason); with none the worker does
not start. Inference runs on one dedicated
thread (a single-thread executor), PAPERSHELF_ML_BATCH_SIZE papers per call, so the event
loop keeps the heartbeat and the health key going while the model works. Each batch is
written in one transaction (idempotent upserts, app.artifacts) before the next starts: a
killed worker loses at most one batch, and a re-run skips what is written.

Jobs, queued by name through app.jobs.summaries (which also explains the priorities):
- `summarize_listing(day, category)`: the day's list (new, cross-lists, replacements);
- `summarize_ids(ids)`: papers by id (the back-fill of `papershelf reindex --summaries`).
Both summarise only papers without a current TL;DR (see app.artifacts.summaries), so
at-least-once delivery and repeated requests cost a query, not inference.

Embedding jobs (queued through app.jobs.embeddings, a day's list just ahead of its TL;DRs):
- `embed_listing(day, category)`, `embed_ids(ids)`: a unit vector per paper lacking a current
  one (app.artifacts.embeddings: a new paper version or another embedder makes it stale).

Picture jobs (queued through app.jobs.pictures):
- `thumbnails_for_listing(day, category)`, `thumbnails_for_ids(ids)`: thumbnails for papers
  lacking a current one (app.artifacts.thumbnails), like the TL;DR jobs;
- `tokenize_images(images)`, `decode_tokens(grids)`, `sample_images(solver, nfe, seeds)`,
  `lab_compare(images, paper)`: interactive, awaited by the web. They return a dict; bad
  input comes back as {"error", "status": 422}, never as an exception the web would have to
  unpickle (an exception from torch would import torch there).

A database error (SQLite's lock, a PostgreSQL restart) has arq run the job again later
(workers.pool.retry_job); what is written stays written.

The models' code (`ml`, and with it torch) is imported inside the functions that run once
the pool has started (or in `summarize_inline`, `embed_inline` and `thumbnails_inline`, the
inline back-fills of `papershelf reindex`), so importing this package costs no torch. ml.pictures
does the model-facing picture work on arrays and images; here the settings, the store, the
PNG encoding (app.artifacts.thumbnails) and the PDFs (the deployment's arXiv client) come in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.settings import Settings, get_settings
from workers.ml.embeddings import embed_ids, embed_listing
from workers.ml.lifecycle import MAX_TRIES, shutdown, startup
from workers.ml.pictures import (
    decode_tokens,
    lab_compare,
    sample_images,
    thumbnails_for_ids,
    thumbnails_for_listing,
    tokenize_images,
)
from workers.ml.summaries import summarize_ids, summarize_listing
from workers.pool import pool_settings

FUNCTIONS: list[Callable[..., Any]] = [
    embed_listing,
    embed_ids,
    summarize_listing,
    summarize_ids,
    thumbnails_for_listing,
    thumbnails_for_ids,
    tokenize_images,
    decode_tokens,
    sample_images,
    lab_compare,
]


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The arq settings of `papershelf worker --pool ml`."""
    return pool_settings(
        settings,
        queue_name=settings.ml_queue,
        functions=FUNCTIONS,
        on_startup=startup,
        on_shutdown=shutdown,
        max_tries=MAX_TRIES,
        job_timeout=settings.ml_job_timeout,
        keep_result=60,  # short: a kept result blocks its job id from running again
        # One model, one inference thread: a second job at once would only queue behind it.
        # arq starts at most max_jobs per poll and reads the queue again after each, in score
        # order, so a day's list queued during a back-fill job is the next one
        # (app.jobs.summaries).
        max_jobs=1,
    )


def __getattr__(name: str) -> Any:
    """`arq workers.ml.WorkerSettings`: the settings, read from the environment when arq
    asks for them rather than at import."""
    if name == "WorkerSettings":
        return worker_settings(get_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
