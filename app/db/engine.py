"""Engines and sessions: one engine per process, one session per request or job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings, get_settings


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _dump_json(value: object) -> str:
    # Unescaped UTF-8, so search indexes see "Łukasz" rather than "\\u0141ukasz".
    return orjson.dumps(value).decode()


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=_dump_json,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:  # DB-API objects: untyped
            cur = dbapi_conn.cursor()
            # WAL lets the site read while a worker imports; NORMAL is durable at checkpoints.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Index maintenance at millions of rows is cache-bound; the 2 MB default thrashes.
            cur.execute("PRAGMA cache_size=-131072")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, json_serializer=_dump_json)


@lru_cache
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    if is_sqlite(settings.database_url_resolved):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return _engine_for(settings.database_url_resolved)


@lru_cache
def _sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back everything on any error."""
    with _sessionmaker(engine)() as session, session.begin():
        yield session
