"""The middleware's hardening: whose address a request has (trusted proxies), which Host
names are answered, /metrics behind the admin token, gzip with honest ETags, no CDN docs."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.settings import Settings
from app.web.http import conditional
from app.web.middleware import (
    GZIP_MIN_BYTES,
    JsonLogFormatter,
    allowed_hosts,
    client_address,
    install,
    logging_config,
)

TOKEN = "metrics-token"
_ports = itertools.count(1000)


def settings_for(tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": tmp_path,
        "admin_token": TOKEN,
        "rate_limit_per_minute": 0,
        "allowed_hosts": ["testserver"],
        "trusted_proxies": [],
        "public_url": None,
    }
    return Settings(**{**base, **values})  # type: ignore[arg-type]


def site(settings: Settings) -> FastAPI:
    """A small app with the middleware: an echo of the client address, a large HTML page
    with a strong ETag (304 when matched), a small JSON answer and a PNG."""
    app = FastAPI()

    @app.get("/api/v1/whoami")
    def whoami(request: Request) -> dict[str, str]:
        return {"client": client_address(request, settings)}

    @app.get("/page")
    def page(request: Request) -> Response:
        body = ("<!doctype html><p>" + "a listing of papers " * 400 + "</p>").encode()
        return conditional(request, body, "text/html; charset=utf-8", "public, max-age=60")

    @app.get("/small")
    def small() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/picture.png")
    def picture() -> Response:
        return Response(b"\x89PNG" + b"\0" * 5000, media_type="image/png")

    install(app, settings, registry=CollectorRegistry())
    return app


def client(app: FastAPI, peer: str = "127.0.0.1", **kw: object) -> TestClient:
    return TestClient(app, client=(peer, next(_ports)), **kw)  # type: ignore[arg-type]


# --- the client address ---------------------------------------------------------------


def scope(peer: str, forwarded: str | None = None) -> dict[str, object]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"type": "http", "client": (peer, 1), "headers": headers}


def test_forwarded_for_is_ignored_without_trusted_proxies(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    # A loopback peer is no proxy unless configured: the header is the client's own claim.
    assert client_address(scope("127.0.0.1", "203.0.113.9"), s) == "127.0.0.1"
    assert client_address(scope("198.51.100.1", "203.0.113.9"), s) == "198.51.100.1"
    with client(site(s)) as c:
        r = c.get("/api/v1/whoami", headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.json() == {"client": "127.0.0.1"}


def test_trusted_proxies_name_the_client(tmp_path: Path) -> None:
    s = settings_for(tmp_path, trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    # The proxy appends the address it saw; what the client wrote before it is not believed.
    assert client_address(scope("127.0.0.1", "6.6.6.6, 203.0.113.9"), s) == "203.0.113.9"
    # A chain of trusted proxies is walked back to the first untrusted hop.
    assert client_address(scope("10.1.2.3", "6.6.6.6, 203.0.113.9, 10.9.9.9"), s) == "203.0.113.9"
    # Several header lines count as one list.
    forwarded = {
        "type": "http",
        "client": ("127.0.0.1", 1),
        "headers": [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"192.0.2.4")],
    }
    assert client_address(forwarded, s) == "192.0.2.4"
    # An internal client behind trusted proxies only: the first hop.
    assert client_address(scope("127.0.0.1", "10.0.0.7, 10.0.0.8"), s) == "10.0.0.7"
    # No header, or garbage from the proxy: the peer itself.
    assert client_address(scope("127.0.0.1"), s) == "127.0.0.1"
    assert client_address(scope("127.0.0.1", "unknown"), s) == "127.0.0.1"
    # An untrusted peer's header is never read.
    assert client_address(scope("198.51.100.1", "203.0.113.9"), s) == "198.51.100.1"
    assert client_address(scope("2001:db8::1", "203.0.113.9"), s) == "2001:db8::1"


def test_rate_limit_buckets_follow_the_client_address(tmp_path: Path) -> None:
    def statuses(s: Settings) -> list[int]:
        with client(site(s)) as c:
            return [
                c.get("/api/v1/whoami", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                for i in range(4)
            ]

    limits = {"rate_limit_per_minute": 60, "rate_limit_burst": 2}
    # Untrusted: one bucket for the peer whatever the header says.
    assert statuses(settings_for(tmp_path, **limits)) == [200, 200, 429, 429]
    # Behind a trusted proxy: one bucket per forwarded client.
    trusted = settings_for(tmp_path, trusted_proxies=["127.0.0.1"], **limits)
    assert statuses(trusted) == [200, 200, 200, 200]


def test_bad_trusted_proxy_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not-an-ip"):
        settings_for(tmp_path, trusted_proxies="10.0.0.0/8, not-an-ip")
    assert settings_for(tmp_path, trusted_proxies="10.0.0.0/8 ::1").trusted_proxies == [
        "10.0.0.0/8",
        "::1",
    ]


# --- allowed hosts ----------------------------------------------------------------------


def test_default_hosts_are_local_plus_the_public_url(tmp_path: Path) -> None:
    plain = settings_for(tmp_path, allowed_hosts=[])
    assert allowed_hosts(plain) == {"localhost", "127.0.0.1", "::1"}
    public = settings_for(tmp_path, allowed_hosts=[], public_url="https://Papers.Example.org/x")
    assert "papers.example.org" in allowed_hosts(public)


def test_forged_host_is_refused(tmp_path: Path) -> None:
    s = settings_for(tmp_path, allowed_hosts=[], public_url="https://papers.example.org")
    app = site(s)
    with client(app) as c:
        for host in ("papers.example.org", "PAPERS.example.org:443", "localhost:8000", "[::1]:80"):
            assert c.get("/small", headers={"Host": host}).status_code == 200, host
        bad = c.get("/small", headers={"Host": "evil.example"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "bad_host"
        assert bad.headers["x-content-type-options"] == "nosniff"
        assert (
            c.get("/page", headers={"Host": "papers.example.org.evil.example"}).status_code == 400
        )
        # Probes and scrapers reach the process by any name.
        assert (
            c.get("/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 404
        )  # no route here
        auth = {"Host": "10.1.2.3:9100", "Authorization": f"Bearer {TOKEN}"}
        assert c.get("/metrics", headers=auth).status_code == 200
    # `*` answers any Host.
    with client(site(settings_for(tmp_path, allowed_hosts=["*"]))) as c:
        assert c.get("/small", headers={"Host": "anything.example"}).status_code == 200


# --- /metrics ---------------------------------------------------------------------------


def test_metrics_need_the_admin_token(tmp_path: Path) -> None:
    with client(site(settings_for(tmp_path))) as c:
        c.get("/small")
        anonymous = c.get("/metrics")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert "papershelf_http" not in anonymous.text
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        ok = c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert "papershelf_http_requests_total" in ok.text
    # No admin token configured: metrics are off, like the admin API.
    with client(site(settings_for(tmp_path, admin_token=None))) as c:
        off = c.get("/metrics", headers={"Authorization": "Bearer "})
        assert off.status_code == 403
        assert off.json()["error"]["code"] == "admin_disabled"


# --- compression ------------------------------------------------------------------------


def test_large_pages_are_gzipped_with_a_weak_etag(tmp_path: Path) -> None:
    with client(site(settings_for(tmp_path))) as c:
        plain = c.get("/page", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        strong = plain.headers["etag"]
        assert strong.startswith('"')
        raw = c.get("/page", headers={"Accept-Encoding": "gzip"})
        assert raw.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in raw.headers["vary"].lower()
        # httpx decodes: the same page, in far fewer bytes on the wire.
        assert raw.content == plain.content
        assert int(raw.headers["content-length"]) < len(plain.content) / 5
        # The same tag, weak: a different byte sequence for the same content.
        assert raw.headers["etag"] == "W/" + strong
        # Revalidation with either form answers 304, without a body and uncompressed.
        for tag in (strong, raw.headers["etag"]):
            again = c.get("/page", headers={"Accept-Encoding": "gzip", "If-None-Match": tag})
            assert again.status_code == 304 and again.content == b""
            assert "content-encoding" not in again.headers


def test_small_and_binary_bodies_are_not_compressed(tmp_path: Path) -> None:
    with client(site(settings_for(tmp_path))) as c:
        small = c.get("/small", headers={"Accept-Encoding": "gzip"})
        assert len(small.content) < GZIP_MIN_BYTES
        assert "content-encoding" not in small.headers
        png = c.get("/picture.png", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in png.headers and len(png.content) == 5004


def test_uncompressed_answers_say_what_they_vary_on(tmp_path: Path) -> None:
    """Asked for identity, a body that could have been compressed says `Vary:
    Accept-Encoding` (added to any Vary of its own); small, binary, partial and already
    encoded bodies do not."""
    app = site(settings_for(tmp_path))

    @app.get("/varied")
    def varied() -> Response:
        return Response("<p>" + "x" * 5000, media_type="text/html", headers={"Vary": "Cookie"})

    @app.get("/partial")
    def partial() -> Response:
        return Response("y" * 5000, status_code=206, media_type="text/plain")

    @app.get("/encoded")
    def encoded() -> Response:
        body = gzip.compress(b"z" * 5000)
        return Response(body, media_type="text/plain", headers={"Content-Encoding": "gzip"})

    identity = {"Accept-Encoding": "identity"}
    with client(app) as c:
        page = c.get("/page", headers=identity)
        assert page.headers["vary"] == "Accept-Encoding" and "content-encoding" not in page.headers
        assert int(page.headers["content-length"]) == len(page.content) > GZIP_MIN_BYTES
        assert c.get("/varied", headers=identity).headers["vary"] == "Cookie, Accept-Encoding"
        for path in ("/small", "/picture.png", "/partial", "/encoded"):
            assert "vary" not in c.get(path, headers=identity).headers, path
        not_modified = c.get("/page", headers={**identity, "If-None-Match": page.headers["etag"]})
        assert not_modified.status_code == 304 and "vary" not in not_modified.headers


def test_gzip_body_is_valid_gzip(tmp_path: Path) -> None:
    app = site(settings_for(tmp_path))
    with client(app) as c, c.stream("GET", "/page", headers={"Accept-Encoding": "gzip"}) as r:
        wire = b"".join(r.iter_raw())
    assert gzip.decompress(wire).startswith(b"<!doctype html>")


# --- the access log ---------------------------------------------------------------------


def test_access_log_names_the_forwarded_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings_for(tmp_path, trusted_proxies=["127.0.0.1"])
    with client(site(s)) as c, caplog.at_level(logging.INFO, logger="app.web.middleware"):
        c.get("/small", headers={"X-Forwarded-For": "203.0.113.50"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "app.web.middleware"]
    assert lines[-1]["client"] == "203.0.113.50" and lines[-1]["route"] == "/small"


def test_log_formatter_writes_json_lines() -> None:
    fmt = JsonLogFormatter()
    access = logging.LogRecord("app.web.middleware", logging.INFO, "", 0, '{"a": 1}', None, None)
    access.papershelf_access = True
    assert fmt.format(access) == '{"a": 1}'
    other = logging.LogRecord("app.x", logging.WARNING, "", 0, "Redis %s", ("down",), None)
    assert json.loads(fmt.format(other))["message"] == "Redis down"
    config = logging_config()
    assert config["loggers"]["app.web.middleware"]["handlers"] == ["papershelf_access"]


# --- the app itself -----------------------------------------------------------------------


@pytest.fixture
def main_client(site_settings) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    site_settings()
    from app.main import create_app

    with TestClient(create_app()) as c:
        yield c


def test_no_docs_ui_from_a_cdn_but_the_schema_stays(main_client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        r = main_client.get(path)
        assert r.status_code == 404
        assert "cdn.jsdelivr.net" not in r.text
    schema = main_client.get("/openapi.json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "Papershelf"
    assert "cdn.jsdelivr.net" not in schema.headers["content-security-policy"]


def test_compressed_bodies_are_cached_by_strong_etag() -> None:
    from app.web.middleware import CachingGZipMiddleware, GzipCache

    state = {"body": b"first " * 1000, "etag": '"v1"'}
    inner = FastAPI()

    @inner.get("/v")
    def versioned() -> Response:
        return Response(state["body"], media_type="text/html", headers={"ETag": state["etag"]})

    @inner.get("/untagged")
    def untagged() -> Response:
        return Response(state["body"], media_type="text/html")

    cache = GzipCache(max_bytes=1 << 20)
    app = CachingGZipMiddleware(inner, cache=cache)
    with TestClient(app) as c:
        assert c.get("/v").content == b"first " * 1000
        # Same strong ETag = same bytes by definition: the stored gzip is sent again.
        state["body"] = b"second " * 1000
        assert c.get("/v").content == b"first " * 1000
        state["etag"] = '"v2"'
        assert c.get("/v").content == b"second " * 1000
        # No ETag: compressed every time, never stored.
        before = cache.size
        assert c.get("/untagged").content == b"second " * 1000
        assert cache.size == before
        # Identity and q=0 are not compressed.
        for accept in ("identity", "gzip;q=0", "br"):
            r = c.get("/v", headers={"Accept-Encoding": accept})
            assert "content-encoding" not in r.headers, accept


def test_gzip_cache_stays_within_its_size() -> None:
    from app.web.middleware import GzipCache

    cache = GzipCache(max_bytes=800)
    for i in range(20):
        cache.put(("/p", b"", f'"{i}"'), b"x" * 100)
    assert cache.size <= 800 and cache.get(("/p", b"", '"19"')) is not None
    assert cache.get(("/p", b"", '"0"')) is None
