"""Requests for the fetch pool's alert jobs (`workers/fetch.py`): match a fetched day against
every saved-search alert, and POST one delivery. Their job ids make repeats collapse."""

from __future__ import annotations

from datetime import date

from app.jobs.queueing import JobRequest

MATCH_FUNCTION = "match_alerts"
DELIVER_FUNCTION = "deliver_alert"


def match_request(category: str, day: date) -> JobRequest:
    return JobRequest(MATCH_FUNCTION, (category, day.isoformat()), f"alerts:{category}:{day}")


def delivery_request(delivery_id: int) -> JobRequest:
    return JobRequest(DELIVER_FUNCTION, (delivery_id,), f"alerts:delivery:{delivery_id}")
