"""The embedded Redis-compatible server behind the one-command default."""

from __future__ import annotations

from pathlib import Path

import redis

from app.cli.runtime.redis_server import EmbeddedRedis, find_server_binary


def test_binary_is_found() -> None:
    assert Path(find_server_binary()).name in {"valkey-server", "redis-server"}


def test_starts_on_a_private_socket_and_stops_cleanly(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    url = server.start()
    try:
        assert url.startswith("unix://")
        assert (server.socket.parent.stat().st_mode & 0o777) == 0o700
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None
    assert not server.socket.exists()


def test_long_data_dir_uses_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    with EmbeddedRedis(deep) as server:
        assert len(str(server.socket)) <= 100
        assert redis.Redis.from_url(server.url).ping()
