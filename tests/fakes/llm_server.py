"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, with fault injection.

    with FakeLLM(reply="## Q1\\nAn answer.") as fake:
        fake.inject(status(429, retry_after=5), cut(after=3))
        settings = fake.settings(redis_url=...)  # llm_base_url points here
        ...
        fake.requests  # every request: path, headers, JSON body, status, fault

It speaks the real wire format (a threaded HTTP/1.1 server, keep-alive, port 0):
`POST /v1/chat/completions` with `"stream": true` answers `text/event-stream` in chunked
transfer encoding: a role chunk, `data: {"id": …, "object": "chat.completion.chunk",
"choices": [{"index": 0, "delta": {"content": "…"}, "finish_reason": null}]}` lines of
`chunk_chars` characters of the reply, a chunk with `finish_reason`, then `data: [DONE]`.
Without `stream` it answers one `chat.completion` JSON object. Errors use OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`: 400 for a malformed request, 401 for a
wrong key (when `api_key` is set), 404 for other paths.

Faults form a queue; each request takes the first one and uses it `times` times:
`status(code, retry_after=)` (429, 500, 503, 400…), `cut(after=n)` (n content chunks, then the
connection drops mid-body: no terminating chunk, no [DONE]), `error_chunk(after=n)` (n chunks,
then a `data: {"error": …}` line and the end of the stream), `delay(seconds)` before the
first byte, and `hold(after=n)` (n chunks, then wait until `release()`: a generation that is
visibly in progress; `held` is set once a request is waiting there).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.settings import Settings

DEFAULT_REPLY = (
    "## 1. What problem does this paper try to solve?\n"
    "It studies **tokenizers** for $x^2$ models.\n\n"
    "## 2. What related work is there?\n"
    "- Byte-pair encoding\n- Unigram models\n\n"
    "## 6. Summarise the main content of the paper.\n"
    "A short summary."
)


@dataclass
class Fault:
    kind: str  # status | cut | error_chunk | delay | hold
    times: int = 1
    code: int = 500
    retry_after: float | str | None = None
    message: str | None = None
    after: int = 2
    seconds: float = 0.0


def status(
    code: int,
    *,
    retry_after: float | str | None = None,
    message: str | None = None,
    times: int = 1,
) -> Fault:
    return Fault("status", times, code=code, retry_after=retry_after, message=message)


def cut(*, after: int = 2, times: int = 1) -> Fault:
    return Fault("cut", times, after=after)


def error_chunk(*, after: int = 2, times: int = 1) -> Fault:
    return Fault("error_chunk", times, after=after)


def delay(seconds: float, *, times: int = 1) -> Fault:
    return Fault("delay", times, seconds=seconds)


def hold(*, after: int = 2, times: int = 1) -> Fault:
    return Fault("hold", times, after=after)


@dataclass
class Call:
    started: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    status: int | None = None
    fault: str | None = None
    chunks_sent: int = 0
    completed: bool = False


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_body(code: int, message: str) -> bytes:
    kind = _ERROR_TYPES.get(code, "server_error" if code >= 500 else "invalid_request_error")
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass

    def do_POST(self) -> None:
        self.server.fake._handle(self, "POST")

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeLLM


class FakeLLM:
    def __init__(
        self,
        *,
        reply: str = DEFAULT_REPLY,
        chunk_chars: int = 12,
        api_key: str | None = None,
        finish_reason: str = "stop",
    ) -> None:
        self.reply = reply
        self.chunk_chars = chunk_chars
        self.api_key = api_key
        self.finish_reason = finish_reason
        self.requests: list[Call] = []
        self.faults: list[Fault] = []
        self.held = threading.Event()
        self._gate = threading.Event()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeLLM:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._gate.set()  # a held stream finishes instead of blocking shutdown
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "llm_base_url": self.base_url,
            "llm_model": "fake-model-1",
            "llm_api_key": self.api_key,
            "llm_timeout": 10.0,
            "llm_max_attempts": 4,
            "llm_max_backoff": 30.0,
        }
        values.update(overrides)
        return Settings(**values)

    # -- control --------------------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def release(self) -> None:
        self._gate.set()

    def completions(self) -> list[Call]:
        return [c for c in self.requests if c.path.endswith("/chat/completions")]

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self.faults.pop(0)
            return fault

    # -- serving --------------------------------------------------------------------------

    def _handle(self, h: _Handler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in h.headers.items()}
        length = int(headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        call = Call(time.monotonic(), method, path, headers)
        with self._lock:
            self.requests.append(call)
        try:
            call.body = json.loads(raw) if raw else None
        except ValueError:
            call.body = None
        if method != "POST" or path.rstrip("/") != "/v1/chat/completions":
            self._json(h, call, 404, error_body(404, f"no route {method} {path}"))
            return
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            self._json(h, call, 401, error_body(401, "Incorrect API key provided"))
            return
        body = call.body
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("model"), str)
            or not isinstance(body.get("messages"), list)
            or not body["messages"]
        ):
            self._json(h, call, 400, error_body(400, "'model' and 'messages' are required"))
            return
        fault = self._take_fault()
        call.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            extra = {}
            if fault.retry_after is not None:
                ra = fault.retry_after
                extra["Retry-After"] = f"{ra:g}" if isinstance(ra, int | float) else str(ra)
            message = fault.message or f"fake upstream says {fault.code}"
            self._json(h, call, fault.code, error_body(fault.code, message), extra)
            return
        if body.get("stream"):
            self._stream(h, call, body, fault)
        else:
            self._complete(h, call, body)

    def _json(
        self, h: _Handler, call: Call, code: int, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        call.status = code
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()
        call.completed = True

    def _pieces(self) -> list[str]:
        n = max(1, self.chunk_chars)
        return [self.reply[i : i + n] for i in range(0, len(self.reply), n)]

    def _complete(self, h: _Handler, call: Call, body: dict[str, Any]) -> None:
        data = {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply},
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        self._json(h, call, 200, json.dumps(data).encode())

    def _stream(self, h: _Handler, call: Call, body: dict[str, Any], fault: Fault | None) -> None:
        call.status = 200
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        ident = f"chatcmpl-fake-{len(self.requests)}"
        created = int(time.time())

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()

        def send(data: bytes) -> None:
            h.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            h.wfile.flush()

        try:
            send(event({"role": "assistant", "content": ""}))
            for i, piece in enumerate(self._pieces()):
                if fault is not None and i == fault.after:
                    if fault.kind == "cut":
                        # The connection drops mid-body, as a proxy or a crashed server does.
                        h.close_connection = True
                        with contextlib.suppress(OSError):
                            h.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if fault.kind == "error_chunk":
                        err = {
                            "error": {
                                "message": "fake overload mid-stream",
                                "type": "server_error",
                                "code": "server_error",
                            }
                        }
                        send(f"data: {json.dumps(err)}\n\n".encode())
                        send(b"")
                        return
                    if fault.kind == "hold":
                        self.held.set()
                        self._gate.wait(30)
                send(event({"content": piece}))
                call.chunks_sent += 1
            send(event({}, self.finish_reason))
            send(b"data: [DONE]\n\n")
            send(b"")  # the terminating zero-length chunk
            call.completed = True
        except OSError:  # the client went away
            h.close_connection = True


def running(**kwargs: Any) -> Any:
    """Generator body for a pytest fixture: `yield from running(reply=…)`."""
    with FakeLLM(**kwargs) as fake:
        yield fake
