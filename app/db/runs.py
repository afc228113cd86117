"""Fetch bookkeeping: fetch runs, OAI-PMH harvest progress and per-day completeness checks.

This module is the only writer of `fetch_runs`, `harvest_states` and `day_checks`. Every
function runs in the caller's connection and transaction and commits nothing itself, so a
worker can record a run's end in the same transaction as the papers it stored.

Timestamps are stored in UTC and always come back timezone-aware (UTC): SQLite keeps
naive values, so they are normalised on the way in and out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, func, select

from app.db.models import Announcement, DayCheck, FetchRun, Harvest, Paper
from app.db.statements import insert

runs_t = FetchRun.__table__
harvests_t = Harvest.__table__
checks_t = DayCheck.__table__
announcements_t = Announcement.__table__
papers_t = Paper.__table__

RUNNING, OK, FAILED = "running", "ok", "failed"
FINAL_STATUSES = (OK, FAILED)
# The error of a run whose job died without recording its end (SIGKILL, a job timeout).
ABANDONED = "abandoned: the job ended without recording how (worker killed or job timed out)"
# A runaway traceback or HTML error page should not bloat a table the admin reads often.
ERROR_MAX_CHARS = 4000


def _now() -> datetime:
    return datetime.now(UTC)


def _to_db(value: datetime | None) -> datetime | None:
    """UTC, so SQLite (which drops the offset) stores the same instant PostgreSQL does."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {value!r}")
    return value.astimezone(UTC)


def _from_db(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite: stored as naive UTC by _to_db
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_TS_COLUMNS = frozenset({"started_at", "finished_at", "updated_at", "checked_at"})


def _row_dict(row: sa.Row[Any]) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in _TS_COLUMNS & out.keys():
        out[key] = _from_db(out[key])
    return out


# --- fetch runs -----------------------------------------------------------------------------


def start_run(
    conn: Connection,
    *,
    kind: str,
    source: str,
    category: str | None = None,
    day: date | None = None,
    job_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """Record that a fetch began; returns the run's id for `finish_run`."""
    result = conn.execute(
        runs_t.insert().values(
            job_id=job_id,
            kind=kind,
            source=source,
            category=category,
            day=day,
            started_at=_to_db(now or _now()),
            status=RUNNING,
            fetched=0,
            inserted=0,
            updated=0,
            unchanged=0,
            announcements=0,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    status: str,
    fetched: int | None = None,
    inserted: int | None = None,
    updated: int | None = None,
    unchanged: int | None = None,
    announcements: int | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> None:
    """Record how a run ended ("ok" or "failed") with its counts and error, if any. A count
    left out keeps what the run recorded so far (`add_to_run`)."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"a run finishes as one of {FINAL_STATUSES}, not {status!r}")
    if error is not None and len(error) > ERROR_MAX_CHARS:
        error = error[: ERROR_MAX_CHARS - 1] + "…"
    counts = {
        "fetched": fetched,
        "inserted": inserted,
        "updated": updated,
        "unchanged": unchanged,
        "announcements": announcements,
    }
    result = conn.execute(
        runs_t.update()
        .where(runs_t.c.pk == run_id)
        .values(
            status=status,
            finished_at=_to_db(now or _now()),
            error=error,
            **{k: v for k, v in counts.items() if v is not None},
        )
    )
    if result.rowcount == 0:
        raise LookupError(f"no fetch run {run_id}")


def add_to_run(
    conn: Connection,
    run_id: int,
    *,
    fetched: int = 0,
    inserted: int = 0,
    updated: int = 0,
    unchanged: int = 0,
    announcements: int = 0,
) -> None:
    """Add one page's counts to a run's; called in the transaction that stores the page, so
    a run's counts always match what it committed, even if it is killed before its end."""
    c = runs_t.c
    result = conn.execute(
        runs_t.update()
        .where(c.pk == run_id)
        .values(
            fetched=c.fetched + fetched,
            inserted=c.inserted + inserted,
            updated=c.updated + updated,
            unchanged=c.unchanged + unchanged,
            announcements=c.announcements + announcements,
        )
    )
    if result.rowcount == 0:
        raise LookupError(f"no fetch run {run_id}")


def abandon_stale_runs(
    conn: Connection,
    *,
    started_before: datetime,
    job_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """Mark failed (error `ABANDONED`) the `running` rows no live job can own: those started
    before `started_before` (the caller passes a moment beyond any job's timeout) and, with
    `job_id`, the earlier rows of that job (the queue runs a job id again only once its
    previous attempt is dead). Returns how many rows it marked."""
    stale = runs_t.c.started_at < _to_db(started_before)
    if job_id is not None:
        stale = sa.or_(stale, runs_t.c.job_id == job_id)
    result = conn.execute(
        runs_t.update()
        .where(runs_t.c.status == RUNNING, stale)
        .values(status=FAILED, finished_at=_to_db(now or _now()), error=ABANDONED)
    )
    return int(result.rowcount or 0)


def _runs_newest_first() -> sa.Select[Any]:
    # pk breaks ties between runs started in the same instant (coarse clocks, tests).
    return select(runs_t).order_by(runs_t.c.started_at.desc(), runs_t.c.pk.desc())


def get_run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(runs_t).where(runs_t.c.pk == run_id)).first()
    return _row_dict(row) if row else None


def recent_runs(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs first, as dicts of the `fetch_runs` columns."""
    return [_row_dict(r) for r in conn.execute(_runs_newest_first().limit(limit)).all()]


def _last_run(conn: Connection, status: str, category: str | None = None) -> dict[str, Any] | None:
    query = _runs_newest_first().where(runs_t.c.status == status)
    if category is not None:
        query = query.where(runs_t.c.category == category)
    row = conn.execute(query.limit(1)).first()
    return _row_dict(row) if row else None


# --- OAI-PMH harvest progress ---------------------------------------------------------------


@dataclass(slots=True)
class HarvestState:
    """A harvest's resumable position: the last resumption token and how far it got."""

    key: str
    set_spec: str
    date_from: date | None = None
    date_until: date | None = None
    resumption_token: str | None = None
    cursor: int | None = None
    complete_list_size: int | None = None
    harvested: int = 0
    done: bool = False
    updated_at: datetime | None = None  # set by save_harvest


def harvest_key(set_spec: str, date_from: date | None, date_until: date | None) -> str:
    """The canonical key, e.g. "oai:cs:2025-08-01:2025-08-31" (an open end is empty)."""
    start = date_from.isoformat() if date_from else ""
    end = date_until.isoformat() if date_until else ""
    return f"oai:{set_spec}:{start}:{end}"


def get_harvest(conn: Connection, key: str) -> HarvestState | None:
    row = conn.execute(select(harvests_t).where(harvests_t.c.key == key)).first()
    if row is None:
        return None
    data = _row_dict(row)
    data["done"] = bool(data["done"])
    return HarvestState(**data)


def save_harvest(
    conn: Connection, state: HarvestState, *, now: datetime | None = None
) -> HarvestState:
    """Insert or replace the state under its key; returns it with `updated_at` set."""
    saved = replace(state, updated_at=_from_db(_to_db(now or _now())))
    values = {
        "key": saved.key,
        "set_spec": saved.set_spec,
        "date_from": saved.date_from,
        "date_until": saved.date_until,
        "resumption_token": saved.resumption_token,
        "cursor": saved.cursor,
        "complete_list_size": saved.complete_list_size,
        "harvested": saved.harvested,
        "done": saved.done,
        "updated_at": _to_db(saved.updated_at),
    }
    stmt = insert(conn, harvests_t).values(values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[harvests_t.c.key],
            set_={k: stmt.excluded[k] for k in values if k != "key"},
        )
    )
    return saved


# --- per-day completeness checks ------------------------------------------------------------


def stored_count(conn: Connection, category: str, day: date) -> int:
    """Papers stored in `category`'s list for `day`, every kind (new, cross, replace...).

    Counts every kind because a category's RSS feed lists every kind too.
    """
    return int(
        conn.scalar(
            select(func.count())
            .select_from(announcements_t)
            .where(announcements_t.c.category == category, announcements_t.c.day == day)
        )
        or 0
    )


def record_day_check(
    conn: Connection,
    *,
    category: str,
    day: date,
    feed_count: int,
    stored_count: int,
    now: datetime | None = None,
) -> bool:
    """Store (or overwrite) the check for (category, day); returns whether it is complete."""
    complete = stored_count >= feed_count
    values = {
        "category": category,
        "day": day,
        "feed_count": feed_count,
        "stored_count": stored_count,
        "complete": complete,
        "checked_at": _to_db(now or _now()),
    }
    stmt = insert(conn, checks_t).values(values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[checks_t.c.category, checks_t.c.day],
            set_={
                k: stmt.excluded[k]
                for k in ("feed_count", "stored_count", "complete", "checked_at")
            },
        )
    )
    return complete


def _check_dict(row: sa.Row[Any]) -> dict[str, Any]:
    data = _row_dict(row)
    data["complete"] = bool(data["complete"])
    return data


def day_checks(
    conn: Connection, *, since: date | None = None, category: str | None = None
) -> list[dict[str, Any]]:
    """Checks newest day first (then by category), optionally from `since` on."""
    query = select(checks_t).order_by(checks_t.c.day.desc(), checks_t.c.category)
    if since is not None:
        query = query.where(checks_t.c.day >= since)
    if category is not None:
        query = query.where(checks_t.c.category == category)
    return [_check_dict(r) for r in conn.execute(query).all()]


# --- the admin summary ----------------------------------------------------------------------


def _latest_stored_day(conn: Connection, category: str) -> tuple[date | None, int]:
    # max(day) for one category is a seek on the (category, day, arxiv_id) primary key.
    latest = conn.scalar(
        select(func.max(announcements_t.c.day)).where(announcements_t.c.category == category)
    )
    if latest is None:
        return None, 0
    return latest, stored_count(conn, category, latest)


def fetch_health(conn: Connection, *, categories: Iterable[str], expected: date) -> dict[str, Any]:
    """The stored half of `papershelf status` (`app.fetch_status` adds arXiv's calendar):
    papers stored; per category the newest stored day and its size, whether that reaches
    `expected` (the newest list arXiv has announced), the newest day check, and the last ok
    and last failed run for that category; and the runs recorded without a category
    (multi-category feeds, id look-ups) in the top-level `last_ok` / `last_failed` /
    `running`. Values are Python objects that orjson serialises as they are."""
    per_category: dict[str, dict[str, Any]] = {}
    for category in categories:
        latest_day, latest_count = _latest_stored_day(conn, category)
        check = conn.execute(
            select(checks_t)
            .where(checks_t.c.category == category)
            .order_by(checks_t.c.day.desc())
            .limit(1)
        ).first()
        per_category[category] = {
            "latest_day": latest_day,
            "latest_day_count": latest_count,
            "up_to_date": latest_day is not None and latest_day >= expected,
            "check": _check_dict(check) if check else None,
            "last_ok": _last_run(conn, OK, category),
            "last_failed": _last_run(conn, FAILED, category),
        }
    running = conn.execute(_runs_newest_first().where(runs_t.c.status == RUNNING).limit(10)).all()
    return {
        "papers": int(conn.scalar(select(func.count()).select_from(papers_t)) or 0),
        "categories": per_category,
        "last_ok": _last_run(conn, OK),
        "last_failed": _last_run(conn, FAILED),
        "running": [_row_dict(r) for r in running],
    }
