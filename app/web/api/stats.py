"""What the store holds: papers, versions, announcement days, categories, venues."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.db.queries import stats as read_stats
from app.web.api.schemas import StatsOut
from app.web.deps import ConnDep
from app.web.errors import API_ERRORS, ApiRoute

router = APIRouter(prefix="/api/v1", responses=API_ERRORS, route_class=ApiRoute)


@router.get("/stats", tags=["stats"], response_model=StatsOut)
def api_stats(conn: ConnDep) -> dict[str, Any]:
    return read_stats(conn).to_json()
