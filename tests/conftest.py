"""Shared fixtures. Real data and PostgreSQL are optional for a user's clone; in CI
(PAPERSHELF_TEST_STRICT=1) a missing one is a failure, not a skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _find_shared_data() -> Path:
    """`../shared/data` beside the checkout, or beside any folder above it."""
    if env := os.environ.get("PAPERSHELF_SHARED_DATA"):
        return Path(env)
    root = Path(__file__).resolve().parents[1]
    for parent in root.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return root.parent / "shared" / "data"


SHARED_DATA = _find_shared_data()
STRICT = os.environ.get("PAPERSHELF_TEST_STRICT") == "1"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# TestClient's requests say `Host: testserver`; the site answers only allowed hosts.
os.environ.setdefault("PAPERSHELF_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1,::1")


def need(condition: bool, reason: str) -> None:
    """Skip with a visible reason, or fail when CI demands every capability."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    need(SHARED_DATA.is_dir(), f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


# --- databases -------------------------------------------------------------------------

PG_ADMIN_URL = os.environ.get(
    "PAPERSHELF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _pg_available() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: no server we can use
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    reason = _pg_available()
    need(reason is None, reason or "")
    return PG_ADMIN_URL


def _migrated_engine(url: str):  # type: ignore[no-untyped-def]
    from app.db.engine import make_engine
    from app.db.migrate import upgrade

    upgrade(url)
    return make_engine(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'papershelf.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str):  # type: ignore[no-untyped-def]
    """A fresh, migrated SQLite database per test."""
    engine = _migrated_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database per test, dropped afterwards."""
    import psycopg

    name = f"papershelf_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_engine(pg_url: str):  # type: ignore[no-untyped-def]
    """A fresh, migrated PostgreSQL database per test."""
    engine = _migrated_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Run the test once on each supported database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_engine")
    return request.getfixturevalue("pg_engine")


# --- the app's settings ----------------------------------------------------------------


@pytest.fixture
def site_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Point the shared Settings at a fresh, migrated SQLite store in this test's own data
    dir (no Redis unless given), with any extra PAPERSHELF_* variables: call it with them."""
    from app.db.migrate import upgrade
    from app.settings import Settings, get_settings

    def configure(**env: str) -> Settings:
        monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(tmp_path))
        monkeypatch.delenv("PAPERSHELF_DATABASE_URL", raising=False)
        monkeypatch.delenv("PAPERSHELF_REDIS_URL", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(f"PAPERSHELF_{key}", value)
        get_settings.cache_clear()
        settings = get_settings()
        upgrade(settings.database_url_resolved)
        return settings

    yield configure
    get_settings.cache_clear()
