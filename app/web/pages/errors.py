"""The HTML error page: every page error is one, with a clear message (never the API's
JSON, never a 500)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from app.web.templating import TEMPLATES


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status": status, "title": title, "message": message},
        status_code=status,
    )
