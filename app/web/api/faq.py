"""The FAQ API: request, follow and read a paper's LLM answers to the six questions.

- `POST /api/v1/papers/{id}/faq?lang=en|zh`: 200 with the answer when stored, else queue one
  generation (concurrent requests share it) and answer 202 with its status and position;
- `GET  /api/v1/papers/{id}/faq?lang=`: 200 stored, 202 queued/running, 404 not generated;
  while the paper's current version has no answer but an older version has one, both answer
  with that one marked `stale` (its `version`, and the paper's `paper_version`): GET 200 with
  `status` "stale" while nothing is queued for the new version, 202 while it is queued or
  running (as POST, which queues it);
- `GET  /api/v1/papers/{id}/faq/stream?lang=`: server-sent events: `queued` {position} while
  waiting, `start`, `delta` {text}, `reset` {reason}, then `done` {content…} or `error`
  {message}; a stored answer is one `done` at once. Event ids are stream positions, so a
  reconnecting EventSource (Last-Event-ID) resumes where it was;
- `GET  /api/v1/faq/prompt`: the prompt in use.

Without `llm_base_url` nothing is generated: the API answers 503 `llm_disabled`. Async
routes keep the database in the threadpool and talk to Redis asynchronously; the job runs
in the LLM pool and is queued through `app.jobs.faq`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.artifacts import faqs
from app.artifacts.faqs import (
    LANGS,
    PLACEHOLDERS,
    QUESTIONS,
    SOURCE_NOTES,
    TERMINAL,
    FaqKey,
    Lang,
    PaperText,
    PromptError,
    UnknownLanguage,
    load_prompt,
    parse_lang,
)
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.jobs import faq as jobs
from app.jobs.connections import QueueUnavailable, quick_pool
from app.settings import Settings
from app.web.api.params import PaperId
from app.web.api.schemas import FaqOut, FaqStatus, PromptOut
from app.web.deps import EngineDep, SettingsDep
from app.web.errors import ApiError, ApiRoute, documented, error_response, error_responses

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)

DISABLED = (
    "no LLM is configured for the FAQ: set PAPERSHELF_LLM_BASE_URL (and _LLM_MODEL, "
    "_LLM_API_KEY) to an OpenAI-compatible endpoint and run `papershelf worker --pool llm`"
)
# How long a stream read waits for news before checking the job's place in the queue.
POLL_MS = 1000
_EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering

ERRORS = error_responses(
    {
        400: "Not a paper id, or an unknown language",
        404: "Unknown paper, or no answer generated yet",
        503: "No LLM configured, or its queue (Redis) unreachable",
    }
)


# --- shared steps (the FAQ pages use them too) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lookup:
    paper: PaperText
    key: FaqKey
    row: faqs.FaqRow | None
    # Without `row`: the answer written for an older version, shown marked stale.
    stale: faqs.FaqRow | None = None


def _find(engine: Engine, arxiv_id: str, lang: Lang, model: str) -> Lookup | None:
    with engine.connect() as conn:
        paper, key, row = faqs.find(conn, arxiv_id, lang, model)
        if paper is None or key is None:
            return None
        stale = faqs.older_answer(conn, key) if row is None else None
        return Lookup(paper, key, row, stale)


async def lookup(engine: Engine, settings: Settings, raw_id: str, raw_lang: str) -> Lookup:
    """The paper, its FAQ key for the configured model and the stored answer, if any (else
    an older version's). Raises ApiError: 400 for a bad id or language, 404 for a paper not
    in the store."""
    try:
        arxiv_id, _version = parse_arxiv_id(raw_id)
    except InvalidArxivId as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    try:
        lang = parse_lang(raw_lang)
    except UnknownLanguage as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    found = await run_in_threadpool(_find, engine, arxiv_id, lang, settings.llm_model)
    if found is None:
        raise ApiError(404, "not_found", f"paper {arxiv_id} is not in the store")
    return found


def prompt_out(settings: Settings) -> PromptOut:
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


def _stream_url(key: FaqKey) -> str:
    return f"/api/v1/papers/{key.arxiv_id}/faq/stream?lang={key.lang}"


def _done_out(row: faqs.FaqRow) -> FaqOut:
    return FaqOut(
        **row.to_json(),
        status="done",
        cached=True,
        stream_url=_stream_url(row.key),
        paper_version=row.key.version,
    )


def _stale_out(
    found: Lookup, stale: faqs.FaqRow, status: FaqStatus, position: int | None = None
) -> Response:
    """An older version's answer, marked stale; `status` is the current version's."""
    out = FaqOut(
        **stale.to_json(),
        status=status,
        position=position,
        cached=True,
        stream_url=_stream_url(found.key),
        stale=True,
        paper_version=found.key.version,
    )
    return JSONResponse(out.model_dump(), status_code=200 if status == "stale" else 202)


def _pending_out(key: FaqKey, status: FaqStatus, position: int | None) -> FaqOut:
    return FaqOut(
        arxiv_id=key.arxiv_id,
        version=key.version,
        lang=key.lang,
        model=key.model,
        status=status,
        position=position,
        stream_url=_stream_url(key),
        paper_version=key.version,
    )


def _answered(found: Lookup, settings: Settings) -> Response | None:
    """The response that needs no queue: the stored answer, or 503 without an LLM."""
    if found.row is not None:
        return JSONResponse(_done_out(found.row).model_dump())
    if not settings.llm_base_url:
        return error_response(503, "llm_disabled", DISABLED)
    return None


async def _job_state(settings: Settings, key: FaqKey, *, request: bool = False) -> jobs.JobState:
    """Where the key's generation stands, after queueing it when `request`; a 503 ApiError
    when the queue is unavailable."""
    try:
        async with quick_pool(settings) as pool:
            if request:
                return await jobs.request_generation(pool, settings, key)
            return await jobs.job_state(pool, settings, key)
    except jobs.UNAVAILABLE as exc:
        reason = str(exc) if isinstance(exc, QueueUnavailable) else type(exc).__name__
        raise ApiError(503, "no_queue", f"the LLM queue is unavailable: {reason}") from None


# --- server-sent events -----------------------------------------------------------------------


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
        event, data = jobs.entry_fields(raw)
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


def _row(engine: Engine, key: FaqKey) -> faqs.FaqRow | None:
    with engine.connect() as conn:
        return faqs.get_faq(conn, key)


async def follow(
    settings: Settings, engine: Engine, key: FaqKey, last_id: str = "0-0"
) -> AsyncIterator[str]:
    """The events of a key's generation, from `last_id` until it ends (or the job vanishes,
    or the job timeout passes). While nothing arrives: the queue position when it changes,
    else a comment line, which keeps proxies from closing an idle connection."""
    yield "retry: 3000\n\n"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.llm_job_timeout + 120
    shown: int | None = -1
    try:
        async with quick_pool(settings) as pool:
            while True:
                entries = await jobs.read_events(pool, settings, key, last_id, block_ms=POLL_MS)
                if entries:
                    out, last, ended = frames(entries)
                    for frame in out:
                        yield frame
                    last_id = last or last_id
                    if ended:
                        return
                    continue
                state = await jobs.job_state(pool, settings, key)
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
                    if await jobs.read_events(pool, settings, key, last_id):
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
    except jobs.UNAVAILABLE as exc:
        yield _sse("error", {"message": f"the LLM queue is unavailable ({type(exc).__name__})"})


# --- routes -----------------------------------------------------------------------------------

# The schema lists the two languages; the server also takes a few spellings (zh-CN, EN).
LangQuery = Annotated[
    str, Query(max_length=16, description="en or zh", json_schema_extra={"enum": list(LANGS)})
]


@router.get(
    "/papers/{arxiv_id:path}/faq/stream",
    tags=["faq"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"},
        **ERRORS,
    },
)
async def api_faq_stream(
    arxiv_id: PaperId,
    engine: EngineDep,
    settings: SettingsDep,
    lang: LangQuery = "en",
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Follow a requested FAQ as it is written (server-sent events; see the module doc).
    404 when nothing was requested: POST first."""
    found = await lookup(engine, settings, arxiv_id, lang)
    if found.row is not None:
        return StreamingResponse(
            _once(_sse("done", {"cached": True, **found.row.to_json()})),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    if not settings.llm_base_url:
        return error_response(503, "llm_disabled", DISABLED)
    state = await _job_state(settings, found.key)
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


@router.post(
    "/papers/{arxiv_id:path}/faq",
    tags=["faq"],
    response_model=FaqOut,
    responses={202: {"model": FaqOut, "description": "Queued or running"}, **ERRORS},
)
async def api_faq_request(
    arxiv_id: PaperId, engine: EngineDep, settings: SettingsDep, lang: LangQuery = "en"
) -> Response:
    """Ask for a paper's FAQ: 200 with the stored answer, else one generation is queued
    (requests while it waits or runs join it) and 202 says where it stands; follow it at
    `stream_url`."""
    found = await lookup(engine, settings, arxiv_id, lang)
    if (answer := _answered(found, settings)) is not None:
        return answer
    state = await _job_state(settings, found.key, request=True)
    status: FaqStatus = "running" if state.state == "running" else "queued"
    if found.stale is not None:
        return _stale_out(found, found.stale, status, state.position)
    out = _pending_out(found.key, status, state.position)
    return JSONResponse(out.model_dump(), status_code=202)


@router.get(
    "/papers/{arxiv_id:path}/faq",
    tags=["faq"],
    response_model=FaqOut,
    responses={202: {"model": FaqOut, "description": "Queued or running"}, **ERRORS},
)
async def api_faq(
    arxiv_id: PaperId, engine: EngineDep, settings: SettingsDep, lang: LangQuery = "en"
) -> Response:
    """A paper's stored FAQ (200), or where its generation stands (202), or 404; while the
    current version has none, an older version's answer marked stale (200, or 202 while the
    new one is queued or running)."""
    found = await lookup(engine, settings, arxiv_id, lang)
    if (stale := found.stale) is not None:  # only set while the current version has none
        if not settings.llm_base_url:
            return _stale_out(found, stale, "stale")
        try:
            state = await _job_state(settings, found.key)
        except ApiError:  # no queue: the old answer is still worth reading
            return _stale_out(found, stale, "stale")
        if state.state == "running":
            return _stale_out(found, stale, "running")
        if state.state == "queued":
            return _stale_out(found, stale, "queued", state.position)
        return _stale_out(found, stale, "stale")
    if (answer := _answered(found, settings)) is not None:
        return answer
    state = await _job_state(settings, found.key)
    if state.state in ("queued", "running"):
        status: FaqStatus = "running" if state.state == "running" else "queued"
        out = _pending_out(found.key, status, state.position)
        return JSONResponse(out.model_dump(), status_code=202)
    why = f" (the last attempt failed: {state.message})" if state.state == "failed" else ""
    return error_response(
        404, "not_generated", f"no FAQ for {found.key.arxiv_id} yet{why}: POST to request it"
    )


@router.get(
    "/faq/prompt",
    tags=["faq"],
    response_model=PromptOut,
    responses={503: documented("The configured prompt file cannot be read")},
)
async def api_faq_prompt(settings: SettingsDep) -> Response:
    """The FAQ prompt in use: template, placeholders, the questions per language."""
    try:
        out = await run_in_threadpool(prompt_out, settings)
    except PromptError as exc:
        return error_response(503, "bad_prompt", str(exc))
    return JSONResponse(out.model_dump())
