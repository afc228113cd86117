"""Requests for the fetch pool (`workers/fetch.py`): a category's listing, papers by id, an
OAI-PMH back-fill. Their job ids make repeats collapse into one job."""

from __future__ import annotations

import hashlib
import time
from datetime import date

from app.db import runs
from app.jobs.queueing import JobRequest
from app.taxonomy import get_taxonomy


def ids_job_id(ids: list[str]) -> str:
    digest = hashlib.sha1(",".join(sorted(ids)).encode()).hexdigest()[:16]
    return f"ids:{digest}"


def harvest_key(set_spec: str, date_from: str, date_until: str) -> str:
    """A back-fill's job id, which is also its resumable state's key in the store."""
    return runs.harvest_key(set_spec, date.fromisoformat(date_from), date.fromisoformat(date_until))


def oai_set(category: str) -> str:
    """The OAI-PMH set of a category: `cs.AI` → `cs:cs:AI`, `hep-th` → `physics:hep-th`."""
    tax = get_taxonomy()
    cat = tax.category(tax.canonical(category) or category)
    if cat is None:
        raise ValueError(f"unknown category {category!r}")
    group = cat.group.removeprefix("grp_")
    if "." in cat.id:
        archive, sub = cat.id.split(".", 1)
        return f"{group}:{archive}:{sub}"
    return f"{group}:{cat.id}"


def listing_request(category: str) -> JobRequest:
    # One id per minute: a manual re-fetch collapses with itself, not with yesterday's.
    return JobRequest(
        "fetch_listing", (category,), f"rss:{category}:manual:{int(time.time() // 60)}"
    )


def ids_request(ids: list[str]) -> JobRequest:
    keys = sorted(set(ids))
    return JobRequest("fetch_ids", (keys,), ids_job_id(keys))


def backfill_request(set_spec: str, date_from: date, date_until: date) -> JobRequest:
    args = (set_spec, date_from.isoformat(), date_until.isoformat())
    return JobRequest("backfill", args, harvest_key(*args))
