"""`papershelf alerts …`: saved-search alerts with webhooks (add, list, remove, test,
redeliver)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from app.cli.console import err, fail, out
from app.cli.db import open_engine
from app.settings import get_settings

# The store, the domain and the webhook sender load inside the commands (see app.cli.db).

alerts_cli = typer.Typer(
    help="Saved-search alerts: a webhook POST when a fetched day has new matches.",
    no_args_is_help=True,
)
commands = typer.Typer()
commands.add_typer(alerts_cli, name="alerts")


@alerts_cli.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the alert.")],
    webhook: Annotated[str, typer.Option("--webhook", help="The http(s) URL to POST to.")],
    query: Annotated[str, typer.Option("--query", "-q", help="Search syntax, as on /search.")] = "",
    category: Annotated[
        str, typer.Option("--category", "-c", help="A category expression: cs.AI+cs.LG-cs.CY.")
    ] = "",
    crosslists: Annotated[
        bool, typer.Option("--crosslists/--no-crosslists", help="Include cross-lists.")
    ] = True,
    replacements: Annotated[
        bool, typer.Option("--replacements/--no-replacements", help="Include new versions.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Save an alert; prints its signing secret (shown this once)."""
    from app import alerts

    spec = alerts.AlertSpec(
        name=name,
        query=query,
        category=category,
        webhook_url=webhook,
        include_crosslists=crosslists,
        include_replacements=replacements,
    )
    try:
        spec = alerts.validate(spec, allow_private=get_settings().alerts_allow_private)
    except alerts.InvalidAlert as exc:
        raise fail(str(exc)) from None
    with open_engine().begin() as conn:
        info, secret = alerts.create_alert(conn, spec)
    if as_json:
        out.print_json(json.dumps({**info.to_json(), "secret": secret}))
        return
    out.print(f"alert {info.id} saved: {escape(info.name)}", highlight=False)
    out.print(f"secret (shown once; verifies X-Papershelf-Signature): {secret}", highlight=False)


@alerts_cli.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every alert (without secrets)."""
    from app import alerts

    with open_engine().connect() as conn:
        found = alerts.list_alerts(conn)
    if as_json:
        out.print_json(json.dumps([a.to_json() for a in found]))
        return
    if not found:
        err.print("no alerts")
        return
    table = Table("id", "name", "query", "category", "cross", "repl.", "webhook")
    for a in found:
        table.add_row(
            str(a.id),
            escape(a.name),
            escape(a.query),
            escape(a.category or "-"),
            "yes" if a.include_crosslists else "no",
            "yes" if a.include_replacements else "no",
            escape(a.webhook_url),
        )
    out.print(table)


@alerts_cli.command("remove")
def remove(alert_id: Annotated[int, typer.Argument(help="The alert's id.", min=1)]) -> None:
    """Remove an alert and its delivery records."""
    from app import alerts

    with open_engine().begin() as conn:
        if not alerts.delete_alert(conn, alert_id):
            raise fail(f"no alert with id {alert_id}")
    out.print(f"alert {alert_id} removed")


@alerts_cli.command("test")
def test(alert_id: Annotated[int, typer.Argument(help="The alert's id.", min=1)]) -> None:
    """POST a signed sample (event alert.test) to the alert's webhook now."""
    from app import alerts
    from workers import webhooks

    settings = get_settings()
    sent_at = datetime.now(UTC)
    with open_engine().connect() as conn:
        try:
            delivery = alerts.sample_delivery(conn, alert_id)
        except LookupError as exc:
            raise fail(str(exc)) from None
        body = alerts.payload(
            conn, delivery, sent_at=sent_at, site_url=settings.public_url, test=True
        )

    async def send() -> webhooks.Sent:
        destination = await webhooks.check_destination(delivery.alert.webhook_url, settings)
        async with webhooks.make_webhook_client(settings) as http:
            return await webhooks.post_signed(
                http,
                destination,
                body,
                secret=delivery.secret,
                sent_at=sent_at,
                settings=settings,
                event="alert.test",
            )

    try:
        sent = asyncio.run(send())
    except (ValueError, webhooks.DeliveryFailed) as exc:
        raise fail(f"alert {alert_id}: {exc}") from None
    out.print(f"alert {alert_id}: the webhook answered HTTP {sent.status}")


@alerts_cli.command("redeliver")
def redeliver(
    alert_id: Annotated[int, typer.Argument(help="The alert's id.", min=1)],
    delivery: Annotated[
        int | None,
        typer.Option(
            help="Only this delivery (its id, from `GET /api/v1/admin/alerts/ID`).", min=1
        ),
    ] = None,
) -> None:
    """Queue the alert's failed deliveries again now (the fetch pool sends them)."""
    from app import alerts
    from app.jobs import alerts as alert_jobs

    settings = get_settings()
    engine = open_engine()
    with engine.begin() as conn:
        try:
            reopened = alerts.redeliver(conn, alert_id, delivery)
        except LookupError as exc:
            raise fail(str(exc)) from None
    if not reopened:
        out.print(f"alert {alert_id}: no failed delivery to send again")
        return
    queued, left = asyncio.run(alert_jobs.requeue(settings, reopened))
    if left:
        with engine.begin() as conn:
            alerts.reschedule(conn, left, datetime.now(UTC))
        raise fail(
            f"alert {alert_id}: the job queue is unavailable (no Redis, or unreachable); "
            f"deliveries {', '.join(map(str, left))} are due again and the fetch pool's retry "
            "sends them once it runs"
        )
    out.print(f"alert {alert_id}: queued deliveries {', '.join(map(str, queued))}")
