"""Fetch benchmark: feed bytes to searchable rows through the real worker (arq queue, limiter,
retry machinery) against the bare parse + upsert path, in one run.

    python -m bench.fetch            # ~10k real papers in daily feeds of 6 categories
    python -m bench.fetch --quick    # smoke run
    python -m bench.fetch --json out.json

Both paths read the same feeds from the fake arXiv on 127.0.0.1 (the politeness interval is
zero) and write into fresh SQLite databases with the search index maintained.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from arq import Worker, create_pool

from app.db import store
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.ingest.rss import parse_feed
from app.jobs.connections import redis_settings
from app.search.backend import search_papers
from bench.ingest import find_data
from tests.fakes.arxiv_server import FakeArxiv, load_listing
from workers import fetch

CATEGORIES = ["cs.CV", "cs.CL", "cs.AI", "cs.LG", "cs.RO", "cs.IR"]
REDIS_URL = "redis://127.0.0.1:6379/0"


def bare(fake: FakeArxiv, url: str) -> tuple[int, float]:
    """Download each feed, parse it, upsert it in one transaction: no queue, no limiter."""
    upgrade(url)
    engine = make_engine(url)
    written = 0
    start = time.perf_counter()
    with httpx.Client() as http:
        for cat in CATEGORIES:
            body = http.get(f"{fake.url}/rss/{cat}").content
            page = parse_feed(body, source=cat)
            with engine.begin() as conn:
                store.upsert_papers(conn, page.papers)
            written += len(page.papers)
    seconds = time.perf_counter() - start
    engine.dispose()
    return written, seconds


async def through_worker(fake: FakeArxiv, url: str, tmp: Path) -> tuple[int, float]:
    upgrade(url)
    settings = fake.settings(
        database_url=url,
        data_dir=tmp,
        categories=CATEGORIES,
        fetch_queue=f"papershelf-bench:{uuid.uuid4().hex}",
    )
    pool = await create_pool(redis_settings(REDIS_URL))
    run = uuid.uuid4().hex
    for cat in CATEGORIES:
        await pool.enqueue_job(
            "fetch_listing", cat, _job_id=f"bench:{run}:{cat}", _queue_name=settings.fetch_queue
        )

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        await fetch.startup(ctx)

    # Timed from the first job's start to the last job's end: worker start-up (imports,
    # connections) is a one-off, like the bare path's engine set-up, which is not timed.
    marks: list[float] = []

    async def job_start(ctx: dict[str, Any]) -> None:
        marks.append(time.perf_counter())

    async def job_end(ctx: dict[str, Any]) -> None:
        marks.append(time.perf_counter())

    worker = Worker(
        functions=fetch.FUNCTIONS,
        queue_name=settings.fetch_queue,
        redis_settings=redis_settings(REDIS_URL),
        on_startup=startup,
        on_shutdown=fetch.shutdown,
        on_job_start=job_start,
        after_job_end=job_end,
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=5,
    )
    await worker.main()
    seconds = max(marks) - min(marks)
    await worker.close()
    await pool.aclose()
    if worker.jobs_failed:
        sys.exit(f"bench: {worker.jobs_failed} fetch jobs failed")
    return fake_feed_items(fake), seconds


def fake_feed_items(fake: FakeArxiv) -> int:
    return sum(len(fake.feeds.get(c, [])) for c in CATEGORIES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--papers", type=int, default=None)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    n = args.papers or (1500 if args.quick else 12_000)
    papers = load_listing(find_data() / "arxiv" / "papers_cs_2025-08-05_2026-07-01.jsonl.gz", n)
    rows = []
    with FakeArxiv() as fake, tempfile.TemporaryDirectory(prefix="papershelf-fetch-") as tmp:
        fake.add_papers(papers)
        items = fake_feed_items(fake)
        # Worker first, then bare, then worker again: the median-free pair brackets drift.
        w1, ws1 = asyncio.run(through_worker(fake, f"sqlite:///{tmp}/w1.db", Path(tmp)))
        b, bs = bare(fake, f"sqlite:///{tmp}/bare.db")
        w2, ws2 = asyncio.run(through_worker(fake, f"sqlite:///{tmp}/w2.db", Path(tmp)))
        worker_s = (ws1 + ws2) / 2
        engine = make_engine(f"sqlite:///{tmp}/w2.db")
        with engine.connect() as conn:
            probe = papers[0].title.split()[0]
            assert search_papers(conn, probe).total > 0, "fetched papers must be searchable"
        engine.dispose()
        rows = [
            {
                "path": "bare parse + upsert",
                "feed_items": b,
                "seconds": round(bs, 3),
                "items_per_s": round(b / bs, 1),
            },
            {
                "path": "arq worker (queue, limiter, retries)",
                "feed_items": w2,
                "seconds": round(worker_s, 3),
                "items_per_s": round(w2 / worker_s, 1),
                "ratio_vs_bare": round((w2 / worker_s) / (b / bs), 3),
            },
        ]
        assert w1 == w2 == items
    print(f"\n{len(CATEGORIES)} daily feeds, {items:,} feed items from {len(papers):,} real papers")
    print(f"{'path':<40} {'items':>8} {'seconds':>9} {'items/s':>10}  ratio")
    for r in rows:
        print(
            f"{r['path']:<40} {r['feed_items']:>8,} {r['seconds']:>9.2f} "
            f"{r['items_per_s']:>10,.0f}  {r.get('ratio_vs_bare', '')}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
