"""The admin API of saved-search alerts: create (the secret is in that answer only), list,
read with recent deliveries, delete, send failed deliveries again. Every route needs the
admin bearer token (`AdminDep`).

The routes are plain `def`s (checking a webhook resolves its host name, which blocks, so
they run in the threadpool, never on the event loop); the one that queues jobs is async and
runs its database work in the threadpool.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app import alerts
from app.jobs import alerts as alert_jobs
from app.web.deps import AdminDep, EngineDep, SettingsDep
from app.web.errors import (
    ADMIN_ERRORS,
    API_ERRORS,
    ApiRoute,
    Responses,
    documented,
    error_response,
)

router = APIRouter(prefix="/api/v1/admin/alerts", responses=API_ERRORS, route_class=ApiRoute)

AlertId = Annotated[int, Path(ge=1, le=2**62, description="the alert's id")]
NOT_FOUND: Responses = {404: documented("No alert with this id")}


class AlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=alerts.MAX_NAME_CHARS)
    query: str = Field(
        default="",
        max_length=alerts.MAX_QUERY_CHARS,
        description="search syntax, as on /search",
    )
    category: str = Field(
        default="", max_length=500, description="a category expression, e.g. cs.AI+cs.LG-cs.CY"
    )
    webhook_url: str = Field(min_length=1, max_length=2000, description="http(s) URL to POST to")
    include_crosslists: bool = True
    include_replacements: bool = False


class AlertOut(BaseModel):
    id: int
    name: str
    query: str
    category: str
    webhook_url: str
    include_crosslists: bool
    include_replacements: bool
    created_at: datetime


class AlertCreated(AlertOut):
    secret: str = Field(
        description="signs every POST (X-Papershelf-Signature); shown in this answer only"
    )


class DeliveryOut(BaseModel):
    id: int
    category: str
    day: str
    papers: int
    status: str
    attempts: int
    rounds: int = Field(description="failed rounds so far (each is one POST and its retries)")
    last_error: str | None
    delivered_at: str | None
    retry_at: str | None = Field(description="when a failed delivery is sent again, if it is")


class RedeliverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delivery: int | None = Field(
        default=None,
        ge=1,
        le=2**62,
        description="one delivery's id; default: every failed delivery of the alert",
    )


class RedeliverOut(BaseModel):
    queued: list[int] = Field(description="the deliveries queued for the fetch pool now")


class AlertDetail(AlertOut):
    deliveries: list[DeliveryOut]


class AlertList(BaseModel):
    alerts: list[AlertOut]


@router.post(
    "",
    tags=["admin"],
    response_model=AlertCreated,
    status_code=201,
    responses={400: documented("Bad name, query, category or webhook URL"), **ADMIN_ERRORS},
)
def api_create_alert(
    _admin: AdminDep, body: AlertIn, engine: EngineDep, settings: SettingsDep
) -> Any:
    """Save a search with a webhook: fired when a fetched day has new matches. The answer
    holds the alert's signing secret, shown this once."""
    spec = alerts.AlertSpec(
        name=body.name,
        query=body.query,
        category=body.category,
        webhook_url=body.webhook_url,
        include_crosslists=body.include_crosslists,
        include_replacements=body.include_replacements,
    )
    try:
        spec = alerts.validate(spec, allow_private=settings.alerts_allow_private)
    except alerts.InvalidAlert as exc:
        return error_response(400, "bad_request", str(exc))
    with engine.begin() as conn:
        info, secret = alerts.create_alert(conn, spec)
    return AlertCreated(**info.to_json(), secret=secret)


@router.get("", tags=["admin"], response_model=AlertList, responses=ADMIN_ERRORS)
def api_list_alerts(_admin: AdminDep, engine: EngineDep) -> Any:
    """Every alert (never their secrets)."""
    with engine.connect() as conn:
        return AlertList(alerts=[AlertOut(**a.to_json()) for a in alerts.list_alerts(conn)])


@router.get(
    "/{alert_id}",
    tags=["admin"],
    response_model=AlertDetail,
    responses={**NOT_FOUND, **ADMIN_ERRORS},
)
def api_get_alert(_admin: AdminDep, engine: EngineDep, alert_id: AlertId) -> Any:
    """One alert and its latest deliveries."""
    with engine.connect() as conn:
        info = alerts.get_alert(conn, alert_id)
        if info is None:
            return error_response(404, "not_found", f"no alert with id {alert_id}")
        sent = alerts.list_deliveries(conn, alert_id)
    return AlertDetail(**info.to_json(), deliveries=[DeliveryOut(**d) for d in sent])


@router.delete(
    "/{alert_id}",
    tags=["admin"],
    status_code=204,
    response_class=Response,
    response_model=None,
    responses={**NOT_FOUND, **ADMIN_ERRORS},
)
def api_delete_alert(_admin: AdminDep, engine: EngineDep, alert_id: AlertId) -> Any:
    """Remove an alert and its delivery records."""
    with engine.begin() as conn:
        if not alerts.delete_alert(conn, alert_id):
            return error_response(404, "not_found", f"no alert with id {alert_id}")
    return Response(status_code=204)


def _reopen(engine: Engine, alert_id: int, delivery_id: int | None) -> list[tuple[int, int]]:
    with engine.begin() as conn:
        return alerts.redeliver(conn, alert_id, delivery_id)


def _reschedule(engine: Engine, delivery_ids: list[int]) -> None:
    with engine.begin() as conn:
        alerts.reschedule(conn, delivery_ids, datetime.now(UTC))


@router.post(
    "/{alert_id}/redeliver",
    tags=["admin"],
    response_model=RedeliverOut,
    status_code=202,
    responses={
        404: documented("No alert with this id, or no such delivery of it"),
        **ADMIN_ERRORS,
        503: documented(
            "Redis is unreachable: the deliveries are due again now and the fetch pool's "
            "retry sends them once it runs"
        ),
    },
)
async def api_redeliver(
    _admin: AdminDep,
    engine: EngineDep,
    settings: SettingsDep,
    alert_id: AlertId,
    body: RedeliverIn | None = None,
) -> Any:
    """Send the alert's failed deliveries (or one of them) again now, whether or not a retry
    is scheduled; delivered and pending ones are left as they are."""
    delivery_id = body.delivery if body else None
    try:
        reopened = await run_in_threadpool(_reopen, engine, alert_id, delivery_id)
    except LookupError as exc:
        return error_response(404, "not_found", str(exc))
    queued, left = await alert_jobs.requeue(settings, reopened, quick=True)
    if left:
        await run_in_threadpool(_reschedule, engine, left)
        return error_response(
            503,
            "no_queue",
            f"the job queue is unavailable (no Redis, or unreachable): deliveries {left} are "
            "due again, and the fetch pool's retry sends them once it runs",
        )
    return RedeliverOut(queued=queued)
