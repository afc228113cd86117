"""The FAQ pages: `/arxiv/{id}/faq` (works without JavaScript: a form POSTs the request,
the page reloads while it runs; papershelf.js streams into it from the API) and
`/faq/prompt`. They share the API's lookup and prompt (`app.web.api.faq`). While the paper's
current version has no answer, an older version's is shown, marked stale, until the new one
is written (the stream replaces it in place).

Include this router before the `/arxiv/{rest:path}` pages, which would otherwise answer
`/arxiv/{id}/faq`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.artifacts.faqs import LANGS, LANGUAGE_NAMES, PromptError, blocks
from app.jobs import faq as jobs
from app.jobs.connections import quick_pool
from app.listing import paper_cards
from app.web.api.faq import DISABLED, lookup, prompt_out
from app.web.deps import EngineDep, SettingsDep
from app.web.errors import ApiError
from app.web.pages.errors import error_page
from app.web.templating import TEMPLATES

router = APIRouter()

PAGE_REFRESH_S = 5


@router.get("/faq/prompt", include_in_schema=False)
async def prompt_page(request: Request, settings: SettingsDep) -> Response:
    try:
        out = await run_in_threadpool(prompt_out, settings)
    except PromptError as exc:
        return error_page(request, 503, "The FAQ prompt cannot be read", str(exc))
    return TEMPLATES.TemplateResponse(
        request, "faq_prompt.html", {"prompt": out, "names": LANGUAGE_NAMES}
    )


@router.get("/arxiv/{arxiv_id:path}/faq", include_in_schema=False)
async def faq_page(
    request: Request, engine: EngineDep, settings: SettingsDep, arxiv_id: str, lang: str = "en"
) -> Response:
    """The FAQ of one paper, readable without JavaScript (papershelf.js streams into it)."""
    try:
        found = await lookup(engine, settings, arxiv_id, lang[:16])
    except ApiError as exc:
        title = "Unknown paper" if exc.status == 404 else "Not a paper id or language"
        return error_page(request, exc.status, title, exc.message)
    state = "done" if found.row else "disabled" if not settings.llm_base_url else "none"
    position: int | None = None
    message: str | None = None
    if state == "none":
        try:
            async with quick_pool(settings) as pool:
                js = await jobs.job_state(pool, settings, found.key)
            state, position, message = js.state, js.position, js.message
        except jobs.UNAVAILABLE as exc:
            state, message = "unavailable", str(exc)
    card = (await run_in_threadpool(_card, engine, found.key.arxiv_id)) or None
    shown = found.row or found.stale
    return TEMPLATES.TemplateResponse(
        request,
        "faq.html",
        {
            "paper": found.paper,
            "card": card,
            "key": found.key,
            "row": found.row,
            "stale": found.stale,
            "blocks": blocks(shown.content) if shown else [],
            "state": state,
            "position": position,
            "message": message,
            "disabled": DISABLED,
            "langs": [(code, LANGUAGE_NAMES[code]) for code in LANGS],
            "lang_name": LANGUAGE_NAMES[found.key.lang],
            "refresh_s": PAGE_REFRESH_S if state in ("queued", "running") else None,
        },
    )


def _card(engine: Engine, arxiv_id: str) -> Any:
    with engine.connect() as conn:
        return paper_cards(conn, [arxiv_id]).get(arxiv_id)


@router.post("/arxiv/{arxiv_id:path}/faq", include_in_schema=False)
async def faq_page_request(
    request: Request, engine: EngineDep, settings: SettingsDep, arxiv_id: str, lang: str = "en"
) -> Response:
    """The page's "Generate" form: queue it, then show the page (a POST, never a GET)."""
    try:
        found = await lookup(engine, settings, arxiv_id, lang[:16])
    except ApiError as exc:
        return error_page(request, exc.status, "Cannot request this FAQ", exc.message)
    if found.row is None:
        if not settings.llm_base_url:
            return error_page(request, 503, "No LLM configured", DISABLED)
        try:
            async with quick_pool(settings) as pool:
                await jobs.request_generation(pool, settings, found.key)
        except jobs.UNAVAILABLE as exc:
            return error_page(request, 503, "The LLM queue is unavailable", str(exc))
    url = f"/arxiv/{found.key.arxiv_id}/faq?lang={found.key.lang}"
    return RedirectResponse(url, status_code=303)
