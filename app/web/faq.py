"""The FAQ: request, follow and read a paper's LLM answers to the six questions.

JSON API (errors in the API's one shape; bad input is a 4xx, never a 500):
- `POST /api/v1/papers/{id}/faq?lang=en|zh`: 200 with the answer when stored, else queue one
  generation (concurrent requests share it) and answer 202 with its status and position;
- `GET  /api/v1/papers/{id}/faq?lang=`: 200 stored, 202 queued/running, 404 not generated;
- `GET  /api/v1/papers/{id}/faq/stream?lang=`: server-sent events: `queued` {position} while
  waiting, `start`, `delta` {text}, `reset` {reason}, then `done` {content…} or `error`
  {message}; a stored answer is one `done` at once. Event ids are stream positions, so a
  reconnecting EventSource (Last-Event-ID) resumes where it was;
- `GET  /api/v1/faq/prompt`: the prompt in use.
Pages: `/arxiv/{id}/faq` (works without JavaScript: a form POSTs the request, the page
reloads while it runs) and `/faq/prompt`.

Without `llm_base_url` nothing is generated: the API answers 503 `llm_disabled`, pages say
so. Include this router before the API and pages routers, whose `/papers/{id:path}` and
`/arxiv/{rest:path}` would otherwise answer these paths. Async routes keep the database in
the threadpool and talk to Redis asynchronously (the job runs in the LLM pool,
`workers/llm.py`; only its function name is used here).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import redis.exceptions
from arq import create_pool
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from markupsafe import Markup
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.db import faqs
from app.faq import (
    JOB_FUNCTION,
    LANGS,
    LANGUAGE_NAMES,
    PLACEHOLDERS,
    QUESTIONS,
    SOURCE_NOTES,
    TERMINAL,
    FaqKey,
    Lang,
    PaperText,
    PromptError,
    UnknownLanguage,
    blocks,
    load_prompt,
    parse_lang,
    spans,
)
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.listing import paper_cards
from app.settings import Settings
from app.web.api import ERRORS as API_ERRORS
from app.web.api import ErrorBody
from app.web.deps import TEMPLATES, EngineDep, SettingsDep, error_response
from app.web.pages import error_page, rich  # also registers the card template's filters
from workers.fetch import QUICK_TIMEOUT_S, QueueUnavailable, quick_redis_settings

router = APIRouter()

DISABLED = (
    "no LLM is configured for the FAQ: set PAPERSHELF_LLM_BASE_URL (and _LLM_MODEL, "
    "_LLM_API_KEY) to an OpenAI-compatible endpoint and run `papershelf worker --pool llm`"
)
# How long a stream read waits for news before checking the job's place in the queue.
POLL_MS = 1000
PAGE_REFRESH_S = 5
_EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering

# Deletes a key's stream when no job exists for it: what is there is from a finished or
# dead run, and a reader of the run about to be queued must not replay its end.
_CLEAR_STALE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('DEL', KEYS[2]) end
return 0
"""

Status = Literal["done", "queued", "running"]


class FaqOut(BaseModel):
    arxiv_id: str
    version: int = Field(description="The paper version answered (0: unknown)")
    lang: Lang
    model: str
    status: Status
    position: int | None = Field(
        None, description="While queued: jobs ahead of it in the LLM queue (running ones too)"
    )
    content: str | None = Field(None, description="The answer (Markdown) when done")
    finish_reason: str | None = None
    prompt_hash: str | None = None
    created_at: str | None = None
    cached: bool = False
    stream_url: str


class PromptOut(BaseModel):
    enabled: bool
    model: str
    source: str = Field(description='"built-in" or the prompt file in use')
    system: str | None
    user: str
    digest: str
    placeholders: list[str]
    questions: dict[str, list[str]]
    full_text: bool = Field(description="Whether the prompt gets the paper's full text")
    note: str


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    **API_ERRORS,  # 422 and 429 in the one error shape
    400: _err("Not a paper id, or an unknown language"),
    404: _err("Unknown paper, or no answer generated yet"),
    503: _err("No LLM configured, or its queue (Redis) unreachable"),
}


# --- shared steps ---------------------------------------------------------------------------


class Refused(Exception):
    """A request this module answers with an error (status, code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Lookup:
    paper: PaperText
    key: FaqKey
    row: faqs.FaqRow | None


def _find(
    engine: Engine, arxiv_id: str, lang: Lang, model: str
) -> tuple[PaperText | None, FaqKey | None, faqs.FaqRow | None]:
    with engine.connect() as conn:
        return faqs.find(conn, arxiv_id, lang, model)


async def _lookup(engine: Engine, settings: Settings, raw_id: str, raw_lang: str) -> Lookup:
    try:
        arxiv_id, _version = parse_arxiv_id(raw_id)
    except InvalidArxivId as exc:
        raise Refused(400, "bad_request", str(exc)) from None
    try:
        lang = parse_lang(raw_lang)
    except UnknownLanguage as exc:
        raise Refused(400, "bad_request", str(exc)) from None
    paper, key, row = await run_in_threadpool(_find, engine, arxiv_id, lang, settings.llm_model)
    if paper is None or key is None:
        raise Refused(404, "not_found", f"paper {arxiv_id} is not in the store")
    return Lookup(paper, key, row)


def _stream_url(key: FaqKey) -> str:
    return f"/api/v1/papers/{key.arxiv_id}/faq/stream?lang={key.lang}"


def _done_out(row: faqs.FaqRow) -> FaqOut:
    return FaqOut(**row.to_json(), status="done", cached=True, stream_url=_stream_url(row.key))


def _pending_out(key: FaqKey, status: Status, position: int | None) -> FaqOut:
    return FaqOut(
        arxiv_id=key.arxiv_id,
        version=key.version,
        lang=key.lang,
        model=key.model,
        status=status,
        position=position,
        stream_url=_stream_url(key),
    )


@asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    """An arq pool for one request that never hangs on a dead Redis: no reconnect attempts,
    short connect timeout (the fetch pool's quick settings)."""
    if not settings.redis_url:
        raise QueueUnavailable("no Redis is configured (PAPERSHELF_REDIS_URL)")
    rs = quick_redis_settings(settings.redis_url)
    try:
        pool = await asyncio.wait_for(create_pool(rs), QUICK_TIMEOUT_S + 1)
    except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
        raise QueueUnavailable(f"Redis is unreachable ({type(exc).__name__})") from exc
    try:
        yield pool
    finally:
        await pool.aclose()


REDIS_ERRORS = (QueueUnavailable, redis.exceptions.RedisError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class JobState:
    state: Literal["queued", "running", "failed", "none"]
    position: int | None = None
    message: str | None = None  # why the last run failed
    has_stream: bool = False


async def job_state(pool: ArqRedis, settings: Settings, key: FaqKey) -> JobState:
    """Where a key's generation stands: arq keeps a queued job in the queue's sorted set
    (ranked by enqueue time) and marks a running one with an in-progress key."""
    job_id = key.job_id(settings.llm_queue)
    stream = key.stream_key(settings.llm_queue)
    async with pool.pipeline(transaction=False) as pipe:
        pipe.exists(in_progress_key_prefix + job_id)
        pipe.zrank(settings.llm_queue, job_id)
        pipe.exists(job_key_prefix + job_id)
        pipe.xrevrange(stream, count=1)
        running, rank, exists, last = await asyncio.wait_for(pipe.execute(), QUICK_TIMEOUT_S)
    has_stream = bool(last)
    if running:
        return JobState("running", has_stream=has_stream)
    if rank is not None or exists:
        return JobState("queued", rank, has_stream=has_stream)
    if last:
        event, data = _fields(last[0][1])
        if event == "error":
            return JobState("failed", message=str(data.get("message", "")), has_stream=True)
    return JobState("none", has_stream=has_stream)


async def request_generation(pool: ArqRedis, settings: Settings, key: FaqKey) -> JobState:
    """Queue the key's job unless one is queued or running (its id is the key's)."""
    job_id = key.job_id(settings.llm_queue)
    stream = key.stream_key(settings.llm_queue)
    clear = pool.eval(_CLEAR_STALE, 2, job_key_prefix + job_id, stream)  # type: ignore[misc]
    await asyncio.wait_for(clear, QUICK_TIMEOUT_S)
    await asyncio.wait_for(
        pool.enqueue_job(
            JOB_FUNCTION, key.arxiv_id, key.lang, _job_id=job_id, _queue_name=settings.llm_queue
        ),
        QUICK_TIMEOUT_S,
    )
    state = await job_state(pool, settings, key)
    if state.state in ("failed", "none"):
        # Finished between the two calls (a worker was quick): the row is there now.
        return JobState("running")
    return state


def _fields(raw: dict[Any, Any]) -> tuple[str, dict[str, Any]]:
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    fields = {text(k): text(v) for k, v in raw.items()}
    try:
        data = json.loads(fields.get("data") or "{}")
    except ValueError:
        data = {}
    return fields.get("event", ""), data if isinstance(data, dict) else {}


# --- the JSON API ---------------------------------------------------------------------------


def _refused(exc: Refused) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message)


def _no_queue(exc: BaseException) -> JSONResponse:
    reason = str(exc) if isinstance(exc, QueueUnavailable) else type(exc).__name__
    return error_response(503, "no_queue", f"the LLM queue is unavailable: {reason}")


LangQuery = Annotated[str, Query(max_length=16, description="en or zh")]


@router.get(
    "/api/v1/papers/{arxiv_id:path}/faq/stream",
    tags=["faq"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"},
        **ERRORS,
    },
)
async def api_faq_stream(
    arxiv_id: str,
    engine: EngineDep,
    settings: SettingsDep,
    lang: LangQuery = "en",
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Follow a requested FAQ as it is written (server-sent events; see the module doc).
    404 when nothing was requested: POST first."""
    try:
        found = await _lookup(engine, settings, arxiv_id, lang)
    except Refused as exc:
        return _refused(exc)
    if found.row is not None:
        return StreamingResponse(
            _once(_sse("done", {"cached": True, **found.row.to_json()})),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    if not settings.llm_base_url:
        return error_response(503, "llm_disabled", DISABLED)
    try:
        async with _redis(settings) as pool:
            state = await job_state(pool, settings, found.key)
    except REDIS_ERRORS as exc:
        return _no_queue(exc)
    if state.state == "none" and not state.has_stream:
        return error_response(
            404, "not_requested", f"no FAQ for {found.key.arxiv_id} was requested: POST first"
        )
    start = last_event_id if last_event_id and _EVENT_ID.fullmatch(last_event_id) else "0-0"
    return StreamingResponse(
        follow(settings, engine, found.key, start),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


async def _once(frame: str) -> AsyncIterator[str]:
    yield frame


def _sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def frames(entries: list[Any]) -> tuple[list[str], str | None, bool]:
    """SSE frames for stream entries (consecutive deltas merged into one), the last entry
    id, and whether a terminal event was among them."""
    out: list[str] = []
    pending: list[str] = []
    pending_id = last = None

    def flush() -> None:
        if pending:
            out.append(_sse("delta", {"text": "".join(pending)}, pending_id))
            pending.clear()

    for raw_id, raw in entries:
        last = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        event, data = _fields(raw)
        if event == "delta":
            pending.append(str(data.get("text", "")))
            pending_id = last
            continue
        flush()
        out.append(_sse(event, data, last))
        if event in TERMINAL:
            return out, last, True
    flush()
    return out, last, False


async def follow(
    settings: Settings, engine: Engine, key: FaqKey, last_id: str = "0-0"
) -> AsyncIterator[str]:
    """The events of a key's generation, from `last_id` until it ends (or the job vanishes,
    or the job timeout passes). While nothing arrives: the queue position when it changes,
    else a comment line, which keeps proxies from closing an idle connection."""
    yield "retry: 3000\n\n"
    stream = key.stream_key(settings.llm_queue)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.llm_job_timeout + 120
    shown: int | None = -1
    try:
        async with _redis(settings) as pool:
            while True:
                reply = await pool.xread({stream: last_id}, count=1000, block=POLL_MS)
                if reply:
                    out, last, ended = frames(reply[0][1])
                    for frame in out:
                        yield frame
                    last_id = last or last_id
                    if ended:
                        return
                    continue
                state = await job_state(pool, settings, key)
                if state.state == "queued":
                    if state.position != shown:
                        shown = state.position
                        yield _sse("queued", {"position": state.position})
                    else:
                        yield ": waiting\n\n"
                elif state.state == "running":
                    yield ": generating\n\n"
                else:
                    # No job any more. Its last events may have landed since the read.
                    reply = await pool.xread({stream: last_id}, count=1000)
                    if reply:
                        continue
                    row = await run_in_threadpool(_row, engine, key)
                    if row is not None:
                        yield _sse("done", {"cached": True, **row.to_json()})
                    else:
                        yield _sse(
                            "error",
                            {
                                "message": "the generation stopped without an answer (is an LLM "
                                "worker running?); request it again"
                            },
                        )
                    return
                if loop.time() > deadline:
                    yield _sse("error", {"message": "still not done; reload to keep waiting"})
                    return
    except REDIS_ERRORS as exc:
        yield _sse("error", {"message": f"the LLM queue is unavailable ({type(exc).__name__})"})


def _row(engine: Engine, key: FaqKey) -> faqs.FaqRow | None:
    with engine.connect() as conn:
        return faqs.get_faq(conn, key)


@router.post(
    "/api/v1/papers/{arxiv_id:path}/faq",
    tags=["faq"],
    response_model=FaqOut,
    responses={202: {"model": FaqOut, "description": "Queued or running"}, **ERRORS},
)
async def api_faq_request(
    arxiv_id: str, engine: EngineDep, settings: SettingsDep, lang: LangQuery = "en"
) -> Response:
    """Ask for a paper's FAQ: 200 with the stored answer, else one generation is queued
    (requests while it waits or runs join it) and 202 says where it stands; follow it at
    `stream_url`."""
    try:
        found = await _lookup(engine, settings, arxiv_id, lang)
    except Refused as exc:
        return _refused(exc)
    if found.row is not None:
        return JSONResponse(_done_out(found.row).model_dump())
    if not settings.llm_base_url:
        return error_response(503, "llm_disabled", DISABLED)
    try:
        async with _redis(settings) as pool:
            state = await request_generation(pool, settings, found.key)
    except REDIS_ERRORS as exc:
        return _no_queue(exc)
    status: Status = "running" if state.state == "running" else "queued"
    out = _pending_out(found.key, status, state.position)
    return JSONResponse(out.model_dump(), status_code=202)


@router.get(
    "/api/v1/papers/{arxiv_id:path}/faq",
    tags=["faq"],
    response_model=FaqOut,
    responses={202: {"model": FaqOut, "description": "Queued or running"}, **ERRORS},
)
async def api_faq(
    arxiv_id: str, engine: EngineDep, settings: SettingsDep, lang: LangQuery = "en"
) -> Response:
    """A paper's stored FAQ (200), or where its generation stands (202), or 404."""
    try:
        found = await _lookup(engine, settings, arxiv_id, lang)
    except Refused as exc:
        return _refused(exc)
    if found.row is not None:
        return JSONResponse(_done_out(found.row).model_dump())
    if not settings.llm_base_url:
        return error_response(503, "llm_disabled", DISABLED)
    try:
        async with _redis(settings) as pool:
            state = await job_state(pool, settings, found.key)
    except REDIS_ERRORS as exc:
        return _no_queue(exc)
    if state.state in ("queued", "running"):
        out = _pending_out(found.key, state.state, state.position)  # type: ignore[arg-type]
        return JSONResponse(out.model_dump(), status_code=202)
    why = f" (the last attempt failed: {state.message})" if state.state == "failed" else ""
    return error_response(
        404, "not_generated", f"no FAQ for {found.key.arxiv_id} yet{why}: POST to request it"
    )


def _prompt_out(settings: Settings) -> PromptOut:
    prompt = load_prompt(settings.faq_prompt_path)
    return PromptOut(
        enabled=bool(settings.llm_base_url),
        model=settings.llm_model,
        source=prompt.source,
        system=prompt.system,
        user=prompt.user,
        digest=prompt.digest,
        placeholders=list(PLACEHOLDERS),
        questions={lang: list(QUESTIONS[lang]) for lang in LANGS},
        full_text=False,
        note="No PDF text extractor is installed: the prompt holds the title, authors and "
        "abstract. " + SOURCE_NOTES["abstract"],
    )


@router.get(
    "/api/v1/faq/prompt",
    tags=["faq"],
    response_model=PromptOut,
    responses={503: _err("The configured prompt file cannot be read")},
)
async def api_faq_prompt(settings: SettingsDep) -> Response:
    """The FAQ prompt in use: template, placeholders, the questions per language."""
    try:
        out = await run_in_threadpool(_prompt_out, settings)
    except PromptError as exc:
        return error_response(503, "bad_prompt", str(exc))
    return JSONResponse(out.model_dump())


# --- pages ------------------------------------------------------------------------------------


def faq_inline(text: str) -> Markup:
    """One line of an answer: **bold** runs, TeX as MathML, everything else escaped."""
    out = []
    for bold, run in spans(text):
        html = rich(run)
        out.append(Markup("<strong>{}</strong>").format(html) if bold else html)
    return Markup("").join(out)


TEMPLATES.env.filters["faqinline"] = faq_inline


def _page_id(raw: str) -> str | None:
    try:
        return parse_arxiv_id(raw)[0]
    except InvalidArxivId:
        return None


@router.get("/faq/prompt", include_in_schema=False)
async def prompt_page(request: Request, settings: SettingsDep) -> Response:
    try:
        out = await run_in_threadpool(_prompt_out, settings)
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
        found = await _lookup(engine, settings, arxiv_id, lang[:16])
    except Refused as exc:
        title = "Unknown paper" if exc.status == 404 else "Not a paper id or language"
        return error_page(request, exc.status, title, exc.message)
    state = "done" if found.row else "disabled" if not settings.llm_base_url else "none"
    position: int | None = None
    message: str | None = None
    if state == "none":
        try:
            async with _redis(settings) as pool:
                js = await job_state(pool, settings, found.key)
            state, position, message = js.state, js.position, js.message
        except REDIS_ERRORS as exc:
            state, message = "unavailable", str(exc)
    card = (await run_in_threadpool(_card, engine, found.key.arxiv_id)) or None
    return TEMPLATES.TemplateResponse(
        request,
        "faq.html",
        {
            "paper": found.paper,
            "card": card,
            "key": found.key,
            "row": found.row,
            "blocks": blocks(found.row.content) if found.row else [],
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
        found = await _lookup(engine, settings, arxiv_id, lang[:16])
    except Refused as exc:
        return error_page(request, exc.status, "Cannot request this FAQ", exc.message)
    if found.row is None:
        if not settings.llm_base_url:
            return error_page(request, 503, "No LLM configured", DISABLED)
        try:
            async with _redis(settings) as pool:
                await request_generation(pool, settings, found.key)
        except REDIS_ERRORS as exc:
            return error_page(request, 503, "The LLM queue is unavailable", str(exc))
    url = f"/arxiv/{found.key.arxiv_id}/faq?lang={found.key.lang}"
    return RedirectResponse(url, status_code=303)
