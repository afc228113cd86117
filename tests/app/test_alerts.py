"""Saved-search alerts: validation, matching a fetched day (toggles, categories, query), and
one delivery per (alert, list, day), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine

from app import alerts
from app.db import store
from app.ingest.records import Announcement, PaperRecord

DAY = date(2026, 7, 1)
PUBLIC = lambda host, port: ["93.184.216.34"]  # noqa: E731 - a resolver that finds a public host


def record(
    n: int, title: str, cats: list[str], *, kind: str = "new", listed_in: str | None = None
) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2607.{n:05d}",
        title=title,
        abstract=f"An abstract about {title.lower()}.",
        authors=[f"Author {n}"],
        primary_category=cats[0],
        categories=cats,
        version=2 if kind.startswith("replace") else 1,
        first_submitted_at=datetime(2026, 6, 30, tzinfo=UTC),
        announcements=[Announcement(listed_in or cats[0], DAY, kind, n)],  # type: ignore[arg-type]
    )


@pytest.fixture
def day(engine: Engine) -> Engine:
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                record(1, "Diffusion models for graphs", ["cs.LG"]),
                record(
                    2,
                    "Diffusion transformers scale",
                    ["cs.CV", "cs.LG"],
                    kind="cross",
                    listed_in="cs.LG",
                ),
                record(3, "Replaced diffusion survey", ["cs.LG"], kind="replace"),
                record(4, "Tokenizers for speech", ["cs.LG"]),
                record(5, "Diffusion with a survey of robots", ["cs.LG", "cs.RO"]),
            ],
        )
    return engine


def save(engine: Engine, **kw: object) -> alerts.AlertInfo:
    spec = alerts.AlertSpec(
        **{"name": "diffusion", "webhook_url": "https://hooks.example.org/x", **kw}
    )  # type: ignore[arg-type]
    with engine.begin() as conn:
        info, secret = alerts.create_alert(
            conn, alerts.validate(spec, allow_private=False, resolve=PUBLIC)
        )
    assert len(secret) >= 32
    return info


def matches(engine: Engine, info: alerts.AlertInfo, category: str = "cs.LG") -> list[str]:
    with engine.connect() as conn:
        return alerts.match_day(conn, info, category, DAY)


def test_matching_keeps_new_papers_and_cross_lists_by_default(day: Engine) -> None:
    info = save(day, query="diffusion")
    assert matches(day, info) == ["2607.00001", "2607.00002", "2607.00005"]


def test_toggles_drop_cross_lists_and_add_replacements(day: Engine) -> None:
    no_cross = save(day, query="diffusion", include_crosslists=False)
    assert matches(day, no_cross) == ["2607.00001", "2607.00005"]
    with_repl = save(day, query="diffusion", include_replacements=True)
    assert matches(day, with_repl) == ["2607.00001", "2607.00002", "2607.00003", "2607.00005"]


def test_query_syntax_and_category_expression_apply(day: Engine) -> None:
    assert matches(day, save(day, query="diffusion -survey")) == ["2607.00001", "2607.00002"]
    assert matches(day, save(day, query="ti:diffusion", category="cs.LG-cs.RO")) == [
        "2607.00001",
        "2607.00002",
    ]
    # A category alone is a search too: everything new in the list but cs.RO's.
    assert matches(day, save(day, category="cs.LG-cs.RO", include_crosslists=False)) == [
        "2607.00001",
        "2607.00004",
    ]
    assert matches(day, save(day, query="diffusion"), category="cs.CV") == []


def test_a_day_fires_once_per_alert_and_a_paper_once_per_day(day: Engine) -> None:
    info = save(day, query="diffusion")
    with day.begin() as conn:
        first = alerts.record_matches(conn, "cs.LG", DAY)
    assert len(first) == 1
    with day.begin() as conn:  # the job again (a retry, a restart): nothing new
        assert alerts.record_matches(conn, "cs.LG", DAY) == first
        alerts.mark_attempt(conn, first[0], ok=True, attempts=2)
    with day.begin() as conn:
        assert alerts.record_matches(conn, "cs.LG", DAY) == []
        # cs.CV's list of the same day holds paper 2, already sent from cs.LG's.
        assert alerts.record_matches(conn, "cs.CV", DAY) == []
    with day.connect() as conn:
        [sent] = alerts.list_deliveries(conn, info.id)
    assert sent["status"] == "delivered" and sent["attempts"] == 2 and sent["papers"] == 3


NOW = datetime(2026, 7, 1, 21, tzinfo=UTC)


def fail_round(engine: Engine, delivery_id: int, now: datetime) -> dict[str, object]:
    """A round that failed (three attempts), and the delivery as the admin API lists it."""
    with engine.begin() as conn:
        alerts.mark_attempt(conn, delivery_id, ok=False, attempts=3, error="HTTP 503", now=now)
        listed = [d for a in alerts.list_alerts(conn) for d in alerts.list_deliveries(conn, a.id)]
    return next(d for d in listed if d["id"] == delivery_id)


def test_a_failed_delivery_is_due_again_later_then_given_up(day: Engine) -> None:
    save(day, query="diffusion", category="cs.LG")
    with day.begin() as conn:
        [pk] = alerts.record_matches(conn, "cs.LG", DAY)
    now = NOW
    for round_, delay in enumerate(alerts.RETRY_DELAYS):
        failed = fail_round(day, pk, now)
        assert failed["status"] == "failed" and failed["rounds"] == round_ + 1
        assert failed["retry_at"] == (now + delay).isoformat()
        with day.begin() as conn:
            # Not before it is due; then claimed once, by one caller, as its next round.
            assert alerts.claim_due_retries(conn, now + delay - timedelta(seconds=1)) == []
            assert alerts.claim_due_retries(conn, now + delay) == [(pk, round_ + 1)]
            assert alerts.claim_due_retries(conn, now + delay) == []
            # The matching job does not queue a reopened round a second time.
            assert alerts.record_matches(conn, "cs.LG", DAY) == []
            delivery = alerts.get_delivery(conn, pk)
            assert delivery is not None and delivery.status == "pending"
        now += delay
    last = fail_round(day, pk, now)
    assert last["rounds"] == len(alerts.RETRY_DELAYS) + 1 and last["retry_at"] is None
    assert last["attempts"] == 3 * (len(alerts.RETRY_DELAYS) + 1)
    with day.begin() as conn:
        assert alerts.claim_due_retries(conn, now + timedelta(days=30)) == []


def test_an_admin_sends_failed_deliveries_again_and_nothing_else(day: Engine) -> None:
    info = save(day, query="diffusion", category="cs.LG")
    other = save(day, query="tokenizers", category="cs.LG")
    with day.begin() as conn:
        mine, theirs = alerts.record_matches(conn, "cs.LG", DAY)
        with pytest.raises(LookupError, match="no alert with id 999"):
            alerts.redeliver(conn, 999)
        with pytest.raises(LookupError, match=f"has no delivery with id {theirs}"):
            alerts.redeliver(conn, info.id, theirs)
        assert alerts.redeliver(conn, info.id) == []  # pending, not failed: left alone
    fail_round(day, mine, NOW)
    with day.begin() as conn:
        assert alerts.redeliver(conn, info.id, mine) == [(mine, 1)]  # before it is due
        assert alerts.claim_due_retries(conn, NOW + timedelta(days=1)) == []
        # Queueing failed: back to failed, due now, no round spent.
        alerts.reschedule(conn, [mine], NOW)
        assert alerts.claim_due_retries(conn, NOW) == [(mine, 1)]
        alerts.mark_attempt(conn, mine, ok=True, attempts=1, now=NOW)
        assert alerts.redeliver(conn, info.id) == []  # delivered: never sent again
        [sent] = alerts.list_deliveries(conn, info.id)
        assert sent["status"] == "delivered" and sent["retry_at"] is None
        assert sent["last_error"] is None and sent["rounds"] == 1
        assert alerts.redeliver(conn, other.id) == []


def test_payload_is_the_signed_json_a_receiver_reads(day: Engine) -> None:
    save(day, query="diffusion", category="cs.LG")
    with day.begin() as conn:
        [pending] = alerts.record_matches(conn, "cs.LG", DAY)
        delivery = alerts.get_delivery(conn, pending)
        assert delivery is not None
        body = alerts.payload(
            conn, delivery, sent_at=datetime(2026, 7, 1, 20, tzinfo=UTC), site_url="https://p.org"
        )
    data = json.loads(body)
    assert data["event"] == "alert.matches" and data["day"] == "2026-07-01"
    assert data["alert"]["category"] == "cs.LG" and data["sent_at"] == "2026-07-01T20:00:00+00:00"
    assert [p["arxiv_id"] for p in data["papers"]] == ["2607.00001", "2607.00002", "2607.00005"]
    assert data["papers"][1]["kind"] == "cross"
    assert data["papers"][0]["url"] == "https://p.org/arxiv/2607.00001"


def test_deleting_an_alert_removes_its_deliveries(day: Engine) -> None:
    info = save(day, query="diffusion")
    with day.begin() as conn:
        alerts.record_matches(conn, "cs.LG", DAY)
        assert alerts.delete_alert(conn, info.id)
        assert not alerts.delete_alert(conn, info.id)
        assert alerts.list_alerts(conn) == []
        assert alerts.list_deliveries(conn, info.id) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": " "}, "name"),
        ({"name": "x" * 201}, "longer than 200"),
        ({"query": "-survey"}, "nothing to search for"),
        ({"query": ""}, "nothing to search for"),
        ({"category": "cs.NOPE"}, "unknown category"),
        ({"webhook_url": "ftp://example.org/x"}, "http:// or https://"),
        ({"webhook_url": "https://user:pw@example.org/x"}, "credentials"),
        ({"webhook_url": "http://127.0.0.1:9/hook"}, "loopback"),
    ],
)
def test_validation_says_what_is_wrong(spec: dict[str, str], message: str) -> None:
    base = {"name": "a", "query": "diffusion", "webhook_url": "https://hooks.example.org/x"}
    with pytest.raises(alerts.InvalidAlert, match=message):
        alerts.validate(alerts.AlertSpec(**{**base, **spec}), allow_private=False, resolve=PUBLIC)


def test_validation_normalises() -> None:
    spec = alerts.validate(
        alerts.AlertSpec(
            name="  my\x02  alert ",
            query=" diffusion ",
            category="cs.lg",
            webhook_url=" https://hooks.example.org/x ",
        ),
        allow_private=False,
        resolve=PUBLIC,
    )
    assert (spec.name, spec.query, spec.category, spec.webhook_url) == (
        "my alert",
        "diffusion",
        "cs.LG",
        "https://hooks.example.org/x",
    )
