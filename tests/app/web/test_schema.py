"""Property tests over the API's own OpenAPI schema: no input makes a 5xx, and every
response matches what the schema documents (status, content type, body).

Schemathesis drives it when installed (it is not a declared test dependency yet); a
hypothesis fuzz of every GET endpoint's query parameters runs either way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.db.engine import make_engine
from app.settings import Settings, get_settings
from app.web.api import admin, listings, papers, search, stats, venues
from tests.app.web.test_api import make_app, seed
from tests.conftest import need

try:
    import schemathesis
    from schemathesis import checks as st_checks
except ImportError:  # pragma: no cover - depends on the environment
    schemathesis = None  # type: ignore[assignment]


def _app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PAPERSHELF_DATABASE_URL", raising=False)
    monkeypatch.delenv("PAPERSHELF_REDIS_URL", raising=False)
    monkeypatch.setenv("PAPERSHELF_ADMIN_TOKEN", "s3cret-token")
    get_settings.cache_clear()
    base: Settings = get_settings()
    seed(base.database_url_resolved, n=12)
    quiet = base.model_copy()
    object.__setattr__(quiet, "rate_limit_per_minute", 0)  # fuzzing is not abuse
    app = make_app(quiet)
    # Set here as well as by the lifespan, which an ASGI test transport may not run.
    app.state.engine = make_engine(base.database_url_resolved)
    yield app
    app.state.engine.dispose()
    get_settings.cache_clear()


@pytest.fixture
def fuzz_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    yield from _app(tmp_path, monkeypatch)


SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


# --- schemathesis ------------------------------------------------------------------------

# The catalogue's resources (the FAQ and ML routes have their own conformance tests).
OPERATIONS = sorted(
    (route.path_format, method)
    for module in (papers, search, stats, listings, venues, admin)
    for route in module.router.routes
    if isinstance(route, APIRoute) and route.include_in_schema
    for method in route.methods
)


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_openapi_conformance(fuzz_app: FastAPI, path: str, method: str) -> None:
    """Schemathesis-generated requests per operation (driven by hypothesis directly: its
    pytest plugin does not support pytest 9 yet)."""
    need(schemathesis is not None, "schemathesis is not installed (pip install schemathesis)")
    operation = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)[path][method]
    checks = [
        st_checks.not_a_server_error,
        st_checks.status_code_conformance,
        st_checks.content_type_conformance,
        st_checks.response_schema_conformance,
    ]

    @SETTINGS
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        case.call_and_validate(checks=checks)

    check()


# Where a schema-valid request may still be refused with a 400 by design: rules a schema
# cannot state (page tokens are signed; `from` must not follow `to`; a listing expression
# must name known categories).
CROSS_CHECKED = {
    ("/api/v1/papers", "GET"),
    ("/api/v1/venues/{name}", "GET"),
    ("/api/v1/days", "GET"),
    ("/api/v1/search", "GET"),
    ("/api/v1/listings/{expression}", "GET"),
    ("/api/v1/admin/fetch", "POST"),
}


# What answers 503 by design in this test's setup (no Redis: no queue to put work on).
DISABLED_POOLS = {("/api/v1/admin/fetch", "POST")}
# Operations with input to get wrong (negative data needs something to negate).
WITH_INPUT = {
    (route.path_format, method): bool(
        route.dependant.query_params or route.dependant.path_params or route.body_field
    )
    for module in (papers, search, stats, listings, venues, admin)
    for route in module.router.routes
    if isinstance(route, APIRoute)
    for method in route.methods
}
CASES = [
    (path, method, mode)
    for path, method in OPERATIONS
    for mode in ("positive", "negative")
    if mode == "positive" or WITH_INPUT[(path, method)]
]


@pytest.mark.parametrize(
    ("path", "method", "mode"), CASES, ids=[f"{m} {p} {mode}" for p, m, mode in CASES]
)
def test_openapi_all_checks(fuzz_app: FastAPI, path: str, method: str, mode: str) -> None:
    """Schemathesis' stricter checks too: schema-valid input is accepted and invalid input
    refused (negative data), the documented headers and `Allow` are sent."""
    need(schemathesis is not None, "schemathesis is not installed (pip install schemathesis)")
    from schemathesis.generation import GenerationMode

    operation = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)[path][method]
    checks = [
        *([] if (path, method) in DISABLED_POOLS else [st_checks.not_a_server_error]),
        st_checks.status_code_conformance,
        st_checks.content_type_conformance,
        st_checks.response_schema_conformance,
        st_checks.response_headers_conformance,
        st_checks.negative_data_rejection,
        st_checks.missing_required_header,
    ]
    if (path, method) not in CROSS_CHECKED:
        checks.append(st_checks.positive_data_acceptance)
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE

    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=generation))
    def check(case: Any) -> None:
        case.call_and_validate(checks=checks, headers={"Authorization": "Bearer s3cret-token"})

    check()


# --- hypothesis fallback: every GET endpoint's query parameters -----------------------------

_text = st.text(max_size=40)
_value = st.one_of(
    _text,
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.dates().map(str),
    st.sampled_from(["cs.CL", "cs", "stat.ML", "", "0", "200", "v1.e30.AA", "2025-02-30"]),
)
_GET_PATHS = st.sampled_from(
    [
        "/api/v1/papers",
        "/api/v1/papers/2501.00001",
        "/api/v1/search",
        "/api/v1/stats",
        "/api/v1/categories",
        "/api/v1/days",
        "/api/v1/venues",
        "/api/v1/venues/iclr2025",
    ]
)
_PARAMS = st.lists(
    st.tuples(
        st.sampled_from(
            ["category", "from", "to", "limit", "page_token", "q", "sort", "offset", "x"]
        ),
        _value,
    ),
    max_size=6,
)


def test_fuzzed_query_parameters_never_5xx(fuzz_app: FastAPI) -> None:
    with TestClient(fuzz_app, raise_server_exceptions=False) as client:

        @settings(SETTINGS, max_examples=200)
        @given(path=_GET_PATHS, params=_PARAMS)
        def check(path: str, params: list[tuple[str, str]]) -> None:
            r = client.get(path, params=params)
            assert r.status_code < 500, (path, params, r.text)
            if r.status_code >= 400:
                body = r.json()
                assert set(body) == {"error"}, body
                assert set(body["error"]) == {"code", "message"}, body

        check()


@pytest.mark.parametrize(
    "segment", ["%00", "..", "a" * 500, "2501.00001v0", "hep-th/9913001", "%F0%9F%92%A9"]
)
def test_odd_paper_ids_are_4xx(fuzz_app: FastAPI, segment: str) -> None:
    with TestClient(fuzz_app, raise_server_exceptions=False) as client:
        r = client.get(f"/api/v1/papers/{segment}")
        assert 400 <= r.status_code < 500, r.text
        r = client.post(f"/api/v1/papers/{segment}/clicks", json={"kind": "pdf"})
        assert 400 <= r.status_code < 500, r.text
