"""`papershelf fetch` (queue a fetch job, or run it here with --now) and `status` (fetch
health)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.console import fail, out
from app.cli.db import open_engine
from app.ingest.ids import InvalidArxivId, split_id_list
from app.schedule import parse_holidays
from app.settings import get_settings
from app.taxonomy import get_taxonomy

# The queue, the store and the fetch pool's code are imported inside the functions so that
# start-up stays fast (see app.cli.db).

commands = typer.Typer()


def _run_job(function: str, *args: object) -> dict[str, Any]:
    """Run one fetch job in this process (what `--now` means), with the worker's context."""
    from arq import create_pool

    from app.jobs.connections import redis_settings
    from workers import fetch as fetch_pool

    async def go() -> dict[str, Any]:
        redis = await create_pool(redis_settings(get_settings().redis_url))
        ctx: dict[str, Any] = {
            "redis": redis,
            "job_id": f"cli:{function}",
            "job_try": fetch_pool.MAX_TRIES,
        }
        await fetch_pool.startup(ctx)
        try:
            result: dict[str, Any] = await getattr(fetch_pool, function)(ctx, *args)
            return result
        finally:
            await fetch_pool.shutdown(ctx)
            await redis.aclose()

    return asyncio.run(go())


@commands.command()
def fetch(
    category: Annotated[str, typer.Argument(help="A category (cs.CL) or comma-joined arXiv ids.")],
    date_from: Annotated[
        str | None, typer.Option("--date", "--from", help="Back-fill from this day (OAI-PMH).")
    ] = None,
    date_until: Annotated[str | None, typer.Option("--until")] = None,
    now: Annotated[bool, typer.Option("--now", help="Run here instead of enqueueing.")] = False,
) -> None:
    """Fetch today's list of CATEGORY (rss.arxiv.org), back-fill it over a date range
    (OAI-PMH), or fetch papers by id (the query API)."""
    from app.jobs import fetch as jobs
    from app.jobs.connections import QueueUnavailable
    from app.jobs.queueing import enqueue, scoped_job_id

    canonical = get_taxonomy().canonical(category)
    if canonical is None:
        try:
            ids = [i for i, _v in split_id_list(category)]
        except InvalidArxivId as exc:
            raise fail(f"{category!r} is neither a known category nor arXiv ids: {exc}") from None
        request = jobs.ids_request(ids)
    elif date_from:
        try:
            d_from = date.fromisoformat(date_from)
            d_until = date.fromisoformat(date_until) if date_until else d_from
        except ValueError as exc:
            raise fail(f"invalid date: {exc}") from None
        if d_until < d_from:
            raise fail("--until is before --from")
        request = jobs.backfill_request(jobs.oai_set(canonical), d_from, d_until)
    else:
        request = jobs.listing_request(canonical)
    open_engine()
    if now:
        try:
            result = _run_job(request.function, *request.args)
        except Exception as exc:
            raise fail(f"{type(exc).__name__}: {exc}") from None
        out.print_json(json.dumps(result, default=str))
        return
    settings = get_settings()
    try:
        queued = asyncio.run(enqueue(settings, request))
    except QueueUnavailable as exc:
        raise fail(f"cannot queue {request.function}: {exc}; use --now to run it here") from None
    job_id = scoped_job_id(settings, request.job_id)
    out.print(f"queued {request.function} as {job_id}" if queued else f"{job_id} is already queued")


@commands.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Fetch health: per followed category the latest day and its completeness check, recent
    runs and errors, the next announcement."""
    from app.fetch_status import status_summary

    settings = get_settings()
    with open_engine().connect() as conn:
        summary = status_summary(
            conn,
            categories=settings.categories,
            now=datetime.now(UTC),
            holidays=parse_holidays(settings.arxiv_holidays),
        )
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    nxt = summary["next_announcement"]
    out.print(
        f"{summary['papers']} papers; latest arXiv list {summary['latest_listing_day']}; next "
        f"announcement {nxt['at']:%Y-%m-%d %H:%M} UTC (list of {nxt['listing_day']})"
    )
    if summary["upcoming_holidays"]:
        out.print("arXiv holidays ahead: " + ", ".join(map(str, summary["upcoming_holidays"])))
    table = Table("category", "latest day", "papers", "feed vs stored", "last ok", "last error")
    for cat, c in summary["categories"].items():
        check = c["check"]
        failed = c["last_failed"]
        table.add_row(
            cat,
            str(c["latest_day"] or "-"),
            str(c["latest_day_count"] or 0),
            f"{check['stored_count']}/{check['feed_count']} on {check['day']}" if check else "-",
            f"{c['last_ok']['started_at']:%m-%d %H:%M}" if c["last_ok"] else "-",
            f"{failed['started_at']:%m-%d %H:%M} {failed['error'] or ''}"[:60] if failed else "-",
        )
    out.print(table)
