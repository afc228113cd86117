"""Saved-search alerts: a search (query, category expression, cross-list and replacement
toggles) with a webhook, fired when a fetched day has new matches.

An alert is matched against one fetched (category, day) at a time: the day's announcements
in that list, of the kinds its toggles keep, are searched with the database's own search
backend (every word required, the same parser as the site), restricted to those papers.
Each (alert, category, day) with matches gets one `alert_deliveries` row, so a day fires
once however often the fetch or the matching job runs; a paper already sent for the same
day from another list is not sent again. The worker POSTs `payload(...)` signed with the
alert's secret (app.webhooks) and records the outcome here.

A delivery whose POST failed (every attempt of a round, or a refusal) is not lost: it is due
again after `RETRY_DELAYS` (10 minutes, then 30, 2 h, 6 h and 18 h: a receiver may be down
for a day), when the fetch pool's cron claims it (`claim_due_retries`); after the last
round it stays failed until an admin asks for it again (`redeliver`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from app.db.models import Alert, AlertDelivery, Announcement, Paper
from app.db.statements import insert
from app.ingest.text import strip_xml_illegal
from app.listing import InvalidExpression, paper_cards, parse_expression
from app.search import backend_for, parse_query
from app.search.base import SearchBackend
from app.webhooks import Resolver, resolve_destination, system_resolver

alerts = Alert.__table__
deliveries = AlertDelivery.__table__
announcements = Announcement.__table__
papers = Paper.__table__

MAX_NAME_CHARS = 200
MAX_QUERY_CHARS = 2000
MAX_ERROR_CHARS = 2000
CROSS_KINDS = frozenset({"cross", "replace-cross"})
REPLACE_KINDS = frozenset({"replace", "replace-cross"})
PAYLOAD_EVENT = "alert.matches"
#: How long after each failed round a delivery is tried again; then it stays failed.
RETRY_DELAYS = (
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=18),
)


class InvalidAlert(ValueError):
    """An alert that cannot be saved; the message says why, for the admin."""


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """What an admin asks for: validated and normalised by `validate`."""

    name: str
    query: str = ""
    category: str = ""
    webhook_url: str = ""
    include_crosslists: bool = True
    include_replacements: bool = False


@dataclass(frozen=True, slots=True)
class AlertInfo:
    """A stored alert as the API and the CLI show it (never its secret)."""

    id: int
    name: str
    query: str
    category: str
    webhook_url: str
    include_crosslists: bool
    include_replacements: bool
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "query": self.query,
            "category": self.category,
            "webhook_url": self.webhook_url,
            "include_crosslists": self.include_crosslists,
            "include_replacements": self.include_replacements,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending POST: where to, signed with what, carrying which papers."""

    id: int
    alert: AlertInfo
    secret: str
    category: str
    day: date
    arxiv_ids: tuple[str, ...]
    status: str
    attempts: int
    rounds: int = 0  # failed rounds before this one


# --- validation and the stored alerts ------------------------------------------------------


def _clean(text: str) -> str:
    return " ".join(strip_xml_illegal(text).split())


def validate(
    spec: AlertSpec, *, allow_private: bool, resolve: Resolver = system_resolver
) -> AlertSpec:
    """The spec normalised (trimmed name, canonical category expression, checked webhook), or
    InvalidAlert. Resolves the webhook's host (blocking)."""
    name = _clean(spec.name)
    if not name:
        raise InvalidAlert("give the alert a name")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidAlert(f"the name is longer than {MAX_NAME_CHARS} characters")
    query = strip_xml_illegal(spec.query).strip()
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidAlert(f"the query is longer than {MAX_QUERY_CHARS} characters")
    category = ""
    if spec.category.strip():
        try:
            category = parse_expression(spec.category).canonical()
        except InvalidExpression as exc:
            raise InvalidAlert(str(exc)) from exc
    parsed = parse_query(query, max_chars=MAX_QUERY_CHARS)
    if not (parsed.has_positive_terms or parsed.has_filters or category):
        raise InvalidAlert(
            "the query has nothing to search for: give words, or a category or date filter"
        )
    try:
        destination = resolve_destination(
            spec.webhook_url, allow_private=allow_private, resolve=resolve
        )
    except ValueError as exc:
        raise InvalidAlert(str(exc)) from exc
    return AlertSpec(
        name=name,
        query=query,
        category=category,
        webhook_url=destination.url,
        include_crosslists=spec.include_crosslists,
        include_replacements=spec.include_replacements,
    )


def _info(row: Any) -> AlertInfo:
    created = row.created_at
    return AlertInfo(
        id=row.pk,
        name=row.name,
        query=row.query,
        category=row.category,
        webhook_url=row.webhook_url,
        include_crosslists=bool(row.include_crosslists),
        include_replacements=bool(row.include_replacements),
        created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
    )


def create_alert(conn: Connection, spec: AlertSpec) -> tuple[AlertInfo, str]:
    """Store a validated spec; returns it with its new secret (shown to the admin once)."""
    secret = secrets.token_urlsafe(32)
    pk = conn.execute(
        alerts.insert()
        .values(
            name=spec.name,
            query=spec.query,
            category=spec.category,
            webhook_url=spec.webhook_url,
            include_crosslists=spec.include_crosslists,
            include_replacements=spec.include_replacements,
            secret=secret,
            created_at=datetime.now(UTC),
        )
        .returning(alerts.c.pk)
    ).scalar_one()
    info = get_alert(conn, pk)
    assert info is not None  # just inserted, in this transaction
    return info, secret


def list_alerts(conn: Connection) -> list[AlertInfo]:
    return [_info(r) for r in conn.execute(sa.select(alerts).order_by(alerts.c.pk))]


def any_alerts(conn: Connection) -> bool:
    """Whether any alert is saved (a fetch queues no matching job otherwise)."""
    return conn.scalar(sa.select(alerts.c.pk).limit(1)) is not None


def get_alert(conn: Connection, alert_id: int) -> AlertInfo | None:
    row = conn.execute(sa.select(alerts).where(alerts.c.pk == alert_id)).first()
    return _info(row) if row is not None else None


def delete_alert(conn: Connection, alert_id: int) -> bool:
    """Remove an alert and its deliveries; False when there was none."""
    conn.execute(deliveries.delete().where(deliveries.c.alert_id == alert_id))
    return conn.execute(alerts.delete().where(alerts.c.pk == alert_id)).rowcount > 0


# --- matching a fetched day ----------------------------------------------------------------


def kinds_for(include_crosslists: bool, include_replacements: bool) -> list[str]:
    """The announcement kinds an alert's toggles keep (new papers always)."""
    kinds = {"new", "cross", "replace", "replace-cross"}
    if not include_crosslists:
        kinds -= CROSS_KINDS
    if not include_replacements:
        kinds -= REPLACE_KINDS
    return sorted(kinds)


def match_day(conn: Connection, alert: AlertInfo, category: str, day: date) -> list[str]:
    """The ids among `category`'s announcements of `day` that `alert` matches, in list order."""
    listed = sa.select(announcements.c.arxiv_id).where(
        announcements.c.category == category,
        announcements.c.day == day,
        announcements.c.kind.in_(kinds_for(alert.include_crosslists, alert.include_replacements)),
    )
    text = alert.query
    categories: list[str] = []
    if alert.category:
        expr = parse_expression(alert.category)
        categories = sorted(expr.include)
        # As the search page: exclusions ride on the query's own syntax.
        text += "".join(f" -cat:{c}" for c in sorted(expr.exclude))
    query = parse_query(text, max_chars=MAX_QUERY_CHARS + 1000)
    backend: SearchBackend = backend_for(conn)
    filters = [papers.c.arxiv_id.in_(listed), *backend._filters(query, categories, None, None)]
    if query.has_positive_terms:
        match = backend.text_match(query)
        found = sa.select(papers.c.arxiv_id).select_from(match.from_).where(match.where, *filters)
    elif query.has_filters or categories:
        if query.negative:
            filters.append(sa.not_(backend.excluded(query)))
        found = sa.select(papers.c.arxiv_id).where(*filters)
    else:
        return []
    ids = set(conn.scalars(found))
    if not ids:
        return []
    order = conn.execute(
        sa.select(announcements.c.arxiv_id)
        .where(
            announcements.c.category == category,
            announcements.c.day == day,
            announcements.c.arxiv_id.in_(sorted(ids)),
        )
        .order_by(announcements.c.position, announcements.c.arxiv_id)
    )
    return [r.arxiv_id for r in order]


def record_matches(conn: Connection, category: str, day: date) -> list[int]:
    """Match every alert against the fetched (category, day) and record a pending delivery
    for each with new matches; returns the ids of every delivery of that (category, day)
    still to send (new ones, and ones an earlier run left unsent)."""
    for alert in list_alerts(conn):
        done = conn.scalar(
            sa.select(deliveries.c.pk).where(
                deliveries.c.alert_id == alert.id,
                deliveries.c.category == category,
                deliveries.c.day == day,
            )
        )
        if done is not None:
            continue
        sent: set[str] = set()
        for (ids,) in conn.execute(
            sa.select(deliveries.c.arxiv_ids).where(
                deliveries.c.alert_id == alert.id, deliveries.c.day == day
            )
        ):
            sent.update(ids or ())
        matches = [i for i in match_day(conn, alert, category, day) if i not in sent]
        if not matches:
            continue
        conn.execute(
            insert(conn, deliveries)
            .values(
                alert_id=alert.id,
                category=category,
                day=day,
                arxiv_ids=matches,
                status="pending",
                attempts=0,
                created_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing(index_elements=["alert_id", "category", "day"])
        )
    return list(
        conn.scalars(
            sa.select(deliveries.c.pk)
            .where(
                deliveries.c.category == category,
                deliveries.c.day == day,
                deliveries.c.status == "pending",
                # A retried one (a later round) was queued when it was reopened.
                deliveries.c.rounds == 0,
            )
            .order_by(deliveries.c.pk)
        )
    )


# --- deliveries ---------------------------------------------------------------------------


def get_delivery(conn: Connection, delivery_id: int) -> Delivery | None:
    row = conn.execute(
        sa.select(deliveries, alerts.c.secret)
        .join(alerts, alerts.c.pk == deliveries.c.alert_id)
        .where(deliveries.c.pk == delivery_id)
    ).first()
    if row is None:
        return None
    alert = get_alert(conn, row.alert_id)
    assert alert is not None  # joined above
    return Delivery(
        id=row.pk,
        alert=alert,
        secret=row.secret,
        category=row.category,
        day=row.day,
        arxiv_ids=tuple(row.arxiv_ids or ()),
        status=row.status,
        attempts=row.attempts,
        rounds=row.rounds,
    )


def _iso(moment: datetime | None) -> str | None:
    """A stored time in ISO 8601 with its offset (UTC; SQLite hands it back naive)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def list_deliveries(conn: Connection, alert_id: int, limit: int = 50) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(deliveries)
        .where(deliveries.c.alert_id == alert_id)
        .order_by(deliveries.c.day.desc(), deliveries.c.pk.desc())
        .limit(limit)
    )
    return [
        {
            "id": r.pk,
            "category": r.category,
            "day": r.day.isoformat(),
            "papers": len(r.arxiv_ids or ()),
            "status": r.status,
            "attempts": r.attempts,
            "rounds": r.rounds,
            "last_error": r.last_error,
            "delivered_at": _iso(r.delivered_at),
            "retry_at": _iso(r.retry_at),
        }
        for r in rows
    ]


def payload(
    conn: Connection,
    delivery: Delivery,
    *,
    sent_at: datetime,
    site_url: str | None = None,
    test: bool = False,
) -> bytes:
    """The JSON body POSTed for `delivery` (compact, UTF-8: the bytes that are signed)."""
    cards = paper_cards(conn, delivery.arxiv_ids)
    kinds = dict(
        conn.execute(
            sa.select(announcements.c.arxiv_id, announcements.c.kind).where(
                announcements.c.category == delivery.category,
                announcements.c.day == delivery.day,
                announcements.c.arxiv_id.in_(list(delivery.arxiv_ids)),
            )
        ).all()
    )
    found = []
    for arxiv_id in delivery.arxiv_ids:
        card = cards.get(arxiv_id)
        if card is None:
            continue
        item: dict[str, Any] = {
            "arxiv_id": card.arxiv_id,
            "version": card.version,
            "kind": kinds.get(arxiv_id),
            "title": card.title,
            "authors": card.authors,
            "abstract": card.abstract,
            "primary_category": card.primary_category,
            "categories": card.categories,
            "comments": card.comments,
            "abs_url": card.abs_url,
            "pdf_url": card.pdf_url,
        }
        if site_url:
            item["url"] = f"{site_url}/arxiv/{card.arxiv_id}"
        found.append(item)
    body = {
        "event": "alert.test" if test else PAYLOAD_EVENT,
        "delivery_id": delivery.id,
        "sent_at": sent_at.astimezone(UTC).isoformat(timespec="seconds"),
        "alert": {
            "id": delivery.alert.id,
            "name": delivery.alert.name,
            "query": delivery.alert.query,
            "category": delivery.alert.category,
            "include_crosslists": delivery.alert.include_crosslists,
            "include_replacements": delivery.alert.include_replacements,
        },
        "category": delivery.category,
        "day": delivery.day.isoformat(),
        "papers": found,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def sample_delivery(conn: Connection, alert_id: int, arxiv_ids: Sequence[str] = ()) -> Delivery:
    """A delivery that is never stored (`papershelf alerts test`): id 0, today."""
    row = conn.execute(sa.select(alerts.c.secret).where(alerts.c.pk == alert_id)).first()
    alert = get_alert(conn, alert_id)
    if row is None or alert is None:
        raise LookupError(f"no alert with id {alert_id}")
    return Delivery(0, alert, row.secret, "", datetime.now(UTC).date(), tuple(arxiv_ids), "test", 0)


def mark_attempt(
    conn: Connection,
    delivery_id: int,
    *,
    ok: bool,
    attempts: int,
    error: str | None = None,
    now: datetime | None = None,
) -> None:
    """Record how a delivery's round ended: delivered, or failed with the last error and,
    unless that was the last round, when it is due again."""
    now = now or datetime.now(UTC)
    rounds = conn.scalar(sa.select(deliveries.c.rounds).where(deliveries.c.pk == delivery_id))
    if rounds is None:
        return  # removed with its alert meanwhile
    retry_at = None if ok or rounds >= len(RETRY_DELAYS) else now + RETRY_DELAYS[rounds]
    conn.execute(
        deliveries.update()
        .where(deliveries.c.pk == delivery_id)
        .values(
            status="delivered" if ok else "failed",
            attempts=deliveries.c.attempts + attempts,
            last_error=None if ok else (error or "")[:MAX_ERROR_CHARS],
            delivered_at=now if ok else None,
            rounds=rounds if ok else rounds + 1,
            retry_at=retry_at,
        )
    )


def _reopen(conn: Connection, where: Any) -> list[tuple[int, int]]:
    """Failed deliveries matching `where` back to pending: (id, round) of each, claimed
    once even when several workers ask at the same time (one UPDATE … RETURNING)."""
    rows = conn.execute(
        deliveries.update()
        .where(deliveries.c.status == "failed", where)
        .values(status="pending", retry_at=None)
        .returning(deliveries.c.pk, deliveries.c.rounds)
    )
    return sorted((row.pk, row.rounds) for row in rows)


def claim_due_retries(conn: Connection, now: datetime | None = None) -> list[tuple[int, int]]:
    """The failed deliveries due again by `now`, made pending: (id, round) to queue."""
    now = now or datetime.now(UTC)
    return _reopen(conn, deliveries.c.retry_at <= now)


def redeliver(
    conn: Connection, alert_id: int, delivery_id: int | None = None
) -> list[tuple[int, int]]:
    """An admin's "send it again": the alert's failed deliveries (or one of them) made
    pending now, whether or not a retry was scheduled. Raises LookupError for an unknown
    alert or a delivery of another alert."""
    if get_alert(conn, alert_id) is None:
        raise LookupError(f"no alert with id {alert_id}")
    where = deliveries.c.alert_id == alert_id
    if delivery_id is not None:
        owner = conn.scalar(sa.select(deliveries.c.alert_id).where(deliveries.c.pk == delivery_id))
        if owner != alert_id:
            raise LookupError(f"alert {alert_id} has no delivery with id {delivery_id}")
        where = sa.and_(where, deliveries.c.pk == delivery_id)
    return _reopen(conn, where)


def reschedule(conn: Connection, delivery_ids: Sequence[int], at: datetime) -> None:
    """Reopened deliveries whose job could not be queued: failed again, due at `at`, so
    the next claim picks them up (no round is spent)."""
    if delivery_ids:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.pk.in_(list(delivery_ids)), deliveries.c.status == "pending")
            .values(status="failed", retry_at=at)
        )
