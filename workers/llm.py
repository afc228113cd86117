"""The LLM pool: FAQ answers from an OpenAI-compatible chat-completions endpoint.

`papershelf worker --pool llm` (or `arq workers.llm.WorkerSettings`) runs `generate_faq` on
`settings.llm_queue` (`worker_settings(settings)`); it imports no torch. Works with any server
that speaks the OpenAI streaming wire format (Kimi/Moonshot, vLLM, Ollama, llama.cpp, OpenAI…).

- **Single flight.** The web enqueues with the job id `FaqKey.job_id` (paper, version,
  language, model), so concurrent requests make one job; every reader follows the same
  generation through a Redis stream per key (`FaqKey.stream_key`): `start`, `delta`s,
  `reset`, then `done` or `error` (app.artifacts.faqs.EVENTS). The stream expires on its own.
- **All or nothing.** The answer is stored in one transaction once complete; a stream cut
  mid-way fails that attempt, readers are told to `reset`, and the next attempt starts from
  scratch. Nothing partial is ever cached.
- **Retries.** `ChatClient` (through workers.retrying) retries transport errors, timeouts,
  429 (honouring Retry-After, capped at `llm_max_backoff`), 5xx, cut or garbled streams and
  mid-stream error chunks, with exponential back-off and jitter, at most `llm_max_attempts`
  attempts; other 4xx (a bad key, an unknown model, a prompt too long) fail at once.
  Cancellation is never retried.
- **Idempotent.** A job whose answer is already stored only re-announces it; a job killed
  with its worker re-runs (arq), starting with a fresh `start`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import Counter
from redis.asyncio import Redis
from sqlalchemy import Engine

from app import __version__
from app.artifacts import faqs
from app.artifacts.faqs import FaqKey, Lang, PaperText, load_prompt, parse_lang, render_messages
from app.settings import Settings, get_settings
from workers import stopping
from workers.pool import pool_settings, start_context
from workers.retrying import (
    Sleep,
    call_with_retries,
    log_before_sleep,
    parse_retry_after,
    wait_exponential_jitter,
    wait_retry_after,
)

log = logging.getLogger(__name__)

OnText = Callable[[str], Awaitable[None]]

# A stream outlives its job by this much (late readers still see the end); a running job's
# stream lives for the job timeout plus this.
STREAM_TTL_AFTER_END = 600
MAX_TRIES = 3  # arq re-runs a job killed with its worker (not one that failed: see below)
_EXCERPT = 300

REQUESTS = Counter(
    "papershelf_llm_requests", "Chat-completion requests by HTTP status (or failure)", ["status"]
)
RETRIES = Counter("papershelf_llm_retries", "Retried chat-completion requests", ["reason"])
JOBS = Counter("papershelf_faq_jobs", "FAQ jobs by outcome", ["outcome"])


# --- errors (picklable: every constructor argument goes to Exception.__init__) -----------


class LLMError(Exception):
    """Base of the client's errors; `str()` is safe to show to readers."""


class LLMRejected(LLMError):
    """The server refused the request in a way retrying will not change (4xx but 429)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"the LLM server refused the request (HTTP {self.status}): {self.message}"


class LLMRetryable(LLMError):
    """Worth another attempt: 429, 5xx, a stream cut short or garbled, an error chunk."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason, status, retry_after)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.reason}" if self.status else self.reason


class LLMUnavailable(LLMError):
    """Every attempt failed transiently."""

    def __init__(self, attempts: int, reason: str) -> None:
        super().__init__(attempts, reason)
        self.attempts = attempts
        self.reason = reason

    def __str__(self) -> str:
        return f"the LLM server failed {self.attempts} attempts; last: {self.reason}"


# The positive list of what is retried (asyncio.CancelledError is not an Exception).
TRANSIENT: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,  # e.g. the connection dropped inside a chunked body
    LLMRetryable,
)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LLMError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _label(exc: BaseException) -> str:
    if isinstance(exc, LLMRetryable):
        return str(exc.status) if exc.status else "stream"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return type(exc).__name__


def _error_message(response: httpx.Response) -> str:
    """OpenAI's `{"error": {"message": …}}` when present, else the body's start."""
    try:
        data = response.json()
    except ValueError:
        return " ".join(response.text[: _EXCERPT * 4].split())[:_EXCERPT]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:_EXCERPT]
    if isinstance(error, str):
        return error[:_EXCERPT]
    return json.dumps(data)[:_EXCERPT]


# --- the client -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: str
    attempts: int


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The pool's one httpx client. The read timeout bounds the wait for each piece of the
    stream (a stalled server fails the attempt), not the whole answer: the job timeout
    bounds that."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.llm_timeout, connect=min(10.0, settings.llm_timeout)),
        headers={"User-Agent": f"Papershelf/{__version__}"},
    )


class ChatClient:
    """Streaming chat completions with bounded retries (see the module docstring)."""

    def __init__(
        self, http: httpx.AsyncClient, settings: Settings, *, sleep: Sleep = stopping.sleep
    ) -> None:
        if not settings.llm_base_url:
            raise LLMRejected(0, "no LLM is configured (PAPERSHELF_LLM_BASE_URL)")
        self.http = http
        self.settings = settings
        self.url = settings.llm_base_url.rstrip("/") + "/chat/completions"
        self._sleep = sleep
        # The server's hint wins over a shorter back-off, but never beyond the cap: a job
        # must not sleep past its own timeout.
        self._wait = wait_retry_after(
            wait_exponential_jitter(initial=1, max=settings.llm_max_backoff, jitter=1),
            cap=settings.llm_max_backoff,
        )

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        on_delta: OnText | None = None,
        on_reset: OnText | None = None,
    ) -> Completion:
        """The whole answer. `on_delta` gets each piece as it arrives; when an attempt that
        already produced text fails, `on_reset` gets the reason before the next attempt."""
        last: dict[str, str] = {}
        emitted = False

        async def emit(piece: str) -> None:
            nonlocal emitted
            emitted = True
            if on_delta is not None:
                await on_delta(piece)

        def count(exc: BaseException | None, reason: str) -> None:
            last["reason"] = reason
            RETRIES.labels(_label(exc) if exc is not None else "unknown").inc()

        async def attempt(number: int) -> Completion:
            nonlocal emitted
            if emitted:
                emitted = False
                if on_reset is not None:
                    await on_reset(last.get("reason", "the attempt failed"))
            text, finish = await self._attempt(messages, emit)
            return Completion(text, finish, number)

        attempts = max(1, self.settings.llm_max_attempts)
        try:
            return await call_with_retries(
                attempt,
                transient=TRANSIENT,
                attempts=attempts,
                wait=self._wait,
                before_sleep=log_before_sleep(
                    log, "LLM request", self.settings.llm_max_attempts, _describe, count
                ),
                sleep=self._sleep,
            )
        except TRANSIENT as exc:
            raise LLMUnavailable(attempts, _describe(exc)) from exc

    def _body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        s = self.settings
        return {
            "model": s.llm_model,
            "messages": messages,
            "stream": True,
            "temperature": s.llm_temperature,
            "max_tokens": s.llm_max_tokens,
        }

    async def _attempt(self, messages: list[dict[str, str]], emit: OnText) -> tuple[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.settings.llm_api_key:
            headers["Authorization"] = f"Bearer {self.settings.llm_api_key}"
        try:
            async with self.http.stream(
                "POST", self.url, json=self._body(messages), headers=headers
            ) as response:
                REQUESTS.labels(str(response.status_code)).inc()
                if response.status_code != 200:
                    await response.aread()
                    message = _error_message(response)
                    status = response.status_code
                    if status == 429 or status >= 500:
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                        raise LLMRetryable(message, status, retry_after)
                    raise LLMRejected(status, message)
                ctype = response.headers.get("content-type", "")
                if ctype.startswith("application/json"):
                    # A server that ignores "stream": one complete answer.
                    return await self._whole(response, emit)
                return await self._read_stream(response, emit)
        except httpx.HTTPError as exc:  # before a response, or a stream broken mid-way
            REQUESTS.labels(_label(exc)).inc()
            raise

    @staticmethod
    async def _whole(response: httpx.Response, emit: OnText) -> tuple[str, str]:
        try:
            data = json.loads(await response.aread())
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMRetryable("the answer was not a chat completion") from None
        if not text.strip():
            raise LLMRetryable("the model returned an empty answer")
        await emit(text)
        return text, choice.get("finish_reason") or "stop"

    @staticmethod
    async def _read_stream(response: httpx.Response, emit: OnText) -> tuple[str, str]:
        """Server-sent events: `data: {chunk}` lines until `data: [DONE]`."""
        parts: list[str] = []
        finish: str | None = None
        done = False
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, `: comments`, `event:`/`id:` fields
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise LLMRetryable("the stream held a line that is not JSON") from None
            if not isinstance(chunk, dict):
                raise LLMRetryable("the stream held a chunk that is not an object")
            if chunk.get("error"):
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise LLMRetryable(f"the server reported an error mid-stream: {message}")
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                piece = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(piece, str) and piece:
                    parts.append(piece)
                    await emit(piece)
                if choice.get("finish_reason"):
                    finish = str(choice["finish_reason"])
        if not done and finish is None:
            raise LLMRetryable("the stream ended before the answer was complete")
        text = "".join(parts)
        if not text.strip():
            raise LLMRetryable("the model returned an empty answer")
        return text, finish or "stop"


# --- the job --------------------------------------------------------------------------------


class FaqStream:
    """Progress events for one key, appended to its Redis stream for every reader."""

    def __init__(self, redis: Redis, key: str, ttl: int) -> None:
        self.redis = redis
        self.key = key
        self.ttl = ttl

    async def publish(self, event: str, *, ttl: int | None = None, **data: Any) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.key, {"event": event, "data": json.dumps(data, ensure_ascii=False)})
            pipe.expire(self.key, ttl or self.ttl)
            await pipe.execute()

    async def end(self, event: str, **data: Any) -> None:
        await self.publish(event, ttl=STREAM_TTL_AFTER_END, **data)


async def startup(ctx: dict[str, Any]) -> None:
    settings = start_context(ctx)
    ctx["http"] = make_http_client(settings)
    # Back-off sleeps end at once when the worker stops (the job is re-queued).
    ctx["llm"] = ChatClient(ctx["http"], settings, sleep=ctx.get("llm_sleep", stopping.sleep))


async def shutdown(ctx: dict[str, Any]) -> None:
    if http := ctx.get("http"):
        await http.aclose()


def _read(
    engine: Engine, arxiv_id: str, lang: Lang, model: str
) -> tuple[PaperText | None, FaqKey | None, faqs.FaqRow | None]:
    with engine.connect() as conn:
        return faqs.find(conn, arxiv_id, lang, model)


def _save(engine: Engine, key: FaqKey, completion: Completion, prompt_hash: str) -> faqs.FaqRow:
    with engine.begin() as conn:  # the whole answer, or nothing
        return faqs.save_faq(
            conn,
            key,
            completion.text,
            prompt_hash=prompt_hash,
            finish_reason=completion.finish_reason,
        )


async def generate_faq(ctx: dict[str, Any], arxiv_id: str, lang: str) -> dict[str, Any]:
    """Answer the FAQ of `arxiv_id` (its current version) in `lang` with the configured
    model, streaming progress to the key's Redis stream and storing the complete answer.
    A failure is announced to readers and fails the job (arq does not retry it: tenacity
    already did; a reader asks again); a job killed with its worker is re-run by arq."""
    settings: Settings = ctx["settings"]
    engine: Engine = ctx["engine"]
    language = parse_lang(lang)
    paper, key, cached = await asyncio.to_thread(
        _read, engine, arxiv_id, language, settings.llm_model
    )
    if paper is None or key is None:
        # The web checks the paper first; it can only have been deleted since.
        JOBS.labels("unknown_paper").inc()
        log.warning("FAQ for %s: the paper is not in the store", arxiv_id)
        return {"status": "unknown_paper", "arxiv_id": arxiv_id}
    stream = FaqStream(
        ctx["redis"],
        key.stream_key(settings.llm_queue),
        settings.llm_job_timeout + STREAM_TTL_AFTER_END,
    )
    if cached is not None:
        await stream.end("done", cached=True, **cached.to_json())
        JOBS.labels("cached").inc()
        return {"status": "cached", "arxiv_id": arxiv_id, "lang": language}

    async def on_delta(text: str) -> None:
        await stream.publish("delta", text=text)

    async def on_reset(reason: str) -> None:
        await stream.publish("reset", reason=f"{reason}; starting over")

    await stream.publish("start", model=settings.llm_model, job_try=ctx.get("job_try", 1))
    try:
        prompt = load_prompt(settings.faq_prompt_path)
        messages = render_messages(prompt, paper, language)
        completion = await ctx["llm"].complete(messages, on_delta=on_delta, on_reset=on_reset)
        row = await asyncio.to_thread(_save, engine, key, completion, prompt.digest)
    except Exception as exc:  # any failure: readers learn why, then the job fails
        JOBS.labels("failed").inc()
        log.warning("FAQ for %s (%s) failed: %s", arxiv_id, language, _describe(exc))
        await stream.end("error", message=_describe(exc))
        raise
    await stream.end("done", cached=False, **row.to_json())
    JOBS.labels("generated").inc()
    return {
        "status": "generated",
        "arxiv_id": arxiv_id,
        "lang": language,
        "chars": len(completion.text),
        "attempts": completion.attempts,
    }


FUNCTIONS: list[Callable[..., Any]] = [generate_faq]


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The arq settings of `papershelf worker --pool llm`."""
    return pool_settings(
        settings,
        queue_name=settings.llm_queue,
        functions=FUNCTIONS,
        on_startup=startup,
        on_shutdown=shutdown,
        max_tries=MAX_TRIES,
        job_timeout=settings.llm_job_timeout,
        # No kept results: a finished job frees its id at once (a failed answer can be asked
        # for again), and the stored answer is what dedupes finished work.
        keep_result=0,
        max_jobs=2,  # generations in flight per worker; hosted APIs rate-limit anyway
    )


def __getattr__(name: str) -> Any:
    """`arq workers.llm.WorkerSettings`: the settings, read from the environment when arq
    asks for them rather than at import."""
    if name == "WorkerSettings":
        return worker_settings(get_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
