"""`/api/v1/ml/` and the thumbnail route: the web checks what it can (size 413, not an image
422, parameters 422) before anything is queued; no Redis or no running ML worker is a 503 at
once; with a real ML worker (a real arq worker in a thread, real Redis, REAL tiny
checkpoints) tokenize, decode and sample answer, and bad tokens or an AMED solver without
its predictor come back as 422. Never a 500 for user input."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.artifacts import thumbnails
from app.db import store
from app.db.engine import make_engine
from app.ingest.records import PaperRecord
from app.settings import Settings
from tests.conftest import need

REDIS_URL = os.environ.get("PAPERSHELF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ID = "2607.00001"


def redis_up() -> bool:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (80, 60)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, "white")
    img.paste(Image.new("RGB", (30, 20), (200, 40, 40)), (10, 10))
    img.save(buf, format=fmt)
    return buf.getvalue()


def seed_paper(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                PaperRecord(
                    arxiv_id=ID,
                    title="Quokka figures",
                    abstract="We draw quokkas.",
                    authors=["Ada Lovelace"],
                    primary_category="cs.CV",
                    categories=["cs.CV"],
                    version=1,
                    first_submitted_at=datetime(2026, 6, 1, tzinfo=UTC),
                )
            ],
        )
    engine.dispose()


class PoolThread:
    """The real ML worker (workers.ml's WorkerSettings, start-up and jobs) polling in a
    thread of its own, as `papershelf worker --pool ml` would in a process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from arq import Worker
        from arq.worker import get_kwargs

        from app.jobs.connections import redis_settings
        from workers import ml as ml_worker
        from workers.ml import lifecycle as ml_lifecycle

        settings = self.settings

        async def startup(ctx: dict[str, Any]) -> None:
            ctx["settings"] = settings
            try:
                await ml_lifecycle.startup(ctx)
            except BaseException as exc:
                self.error = exc
                self.started.set()
                raise
            self.started.set()

        async def main() -> None:
            self.worker = Worker(
                **{
                    **get_kwargs(ml_worker.WorkerSettings),
                    "queue_name": settings.ml_queue,
                    "redis_settings": redis_settings(settings.redis_url),
                    "health_check_key": f"{settings.ml_queue}:health",
                    "health_check_interval": 1,
                    "on_startup": startup,
                    "poll_delay": 0.05,
                    "handle_signals": False,
                }
            )
            self.task = asyncio.current_task()
            try:
                await self.worker.main()
            finally:
                await self.worker.close()

        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(main())
        except (asyncio.CancelledError, Exception):
            pass
        finally:
            self.loop.close()

    def __enter__(self) -> PoolThread:
        self.thread.start()
        assert self.started.wait(120), "the ML worker did not start"
        if self.error is not None:
            raise self.error
        with redis.Redis.from_url(REDIS_URL) as client:  # its health key: the web sees it
            for _ in range(200):
                if client.exists(f"{self.settings.ml_queue}:health"):
                    break
                threading.Event().wait(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(30)
        with redis.Redis.from_url(REDIS_URL) as client:
            found = list(client.scan_iter(match=f"*{self.settings.ml_queue}*"))
            if found:
                client.delete(*found)


@pytest.fixture
def configure(site_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def go(*, with_redis: bool = True, **env: str) -> Settings:
        if with_redis:
            need(redis_up(), f"Redis not reachable at {REDIS_URL}")
            env["REDIS_URL"] = REDIS_URL
        env.setdefault("ML_QUEUE", f"papershelf-test:ml:{uuid.uuid4().hex}")
        settings = site_settings(**env)
        seed_paper(settings.database_url_resolved)
        return settings

    return go


def make_app() -> FastAPI:
    """The API (its ML routes included), lab and pages routers with app.main's lifespan,
    error handlers and middleware (its own metrics registry, no rate limit: these tests are
    not abuse)."""
    from app.main import _http_error, _validation_error, lifespan
    from app.settings import get_settings
    from app.web import api, lab, pages
    from app.web.middleware import install

    app = FastAPI(lifespan=lifespan)
    for router in (api.router, lab.router, pages.router):
        app.include_router(router)
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    quiet = get_settings().model_copy(update={"rate_limit_per_minute": 0})
    install(app, quiet, registry=CollectorRegistry())
    return app


@pytest.fixture
def client_for(configure: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def go(**kw: Any) -> TestClient:
        configure(**kw)
        client = TestClient(make_app(), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield go
    for c in clients:
        c.__exit__(None, None, None)


def error(response: Any, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    if code is not None:
        assert body["code"] == code
    return str(body["message"])


# --- checks made in the web process, with no ML pool ------------------------------------------


def test_input_is_checked_before_anything_is_queued(client_for: Callable[..., TestClient]) -> None:
    client = client_for(ML_MAX_IMAGE_BYTES="2000")
    big = image_bytes(size=(400, 400), fmt="BMP")
    assert len(big) > 2000
    assert "2000 bytes" in error(
        client.post("/api/v1/ml/tokenize", content=big, headers={"Content-Type": "image/bmp"}),
        413,
        "too_large",
    )
    assert "not an image" in error(
        client.post("/api/v1/ml/tokenize", content=b"\x00garbage" * 10), 422, "bad_image"
    )
    truncated = image_bytes("PNG")[:70]
    assert "corrupt" in error(client.post("/api/v1/ml/tokenize", content=truncated), 422)
    assert "empty" in error(client.post("/api/v1/ml/tokenize", content=b""), 422)

    for body in (
        {"solver": "euler", "nfe": 5},
        {"solver": "heun", "nfe": 0},
        {"solver": "heun", "nfe": 51},
        {"solver": "heun", "nfe": "five"},
        {"count": 17},
        {"seeds": list(range(17))},
        {"seeds": [-1]},
        {"seed": 2**63 - 1, "count": 2},
        {"unknown": 1},
    ):
        error(client.post("/api/v1/ml/sample", json=body), 422, "invalid_parameter")
    for body in ({"tokens": "abc"}, {"tokens": [[1.5]]}, {"tokens": [[0] * 65]}, {}):
        error(client.post("/api/v1/ml/decode", json=body), 422, "invalid_parameter")
    # An empty grid, or a negative token, is outside the documented schema.
    for body in ({"tokens": []}, {"tokens": [[]]}, {"tokens": [[-1]]}):
        error(client.post("/api/v1/ml/decode", json=body), 422, "invalid_parameter")
    error(client.post("/api/v1/ml/decode", content=b"{not json"), 422)


def test_no_ml_pool_is_a_503_at_once(client_for: Callable[..., TestClient]) -> None:
    client = client_for()
    message = error(
        client.post("/api/v1/ml/tokenize", content=image_bytes()), 503, "ml_unavailable"
    )
    assert "no ML worker is running" in message
    error(client.post("/api/v1/ml/sample", json={"solver": "ddim", "nfe": 3}), 503)
    error(client.post("/api/v1/ml/decode", json={"tokens": [[0]]}), 503)
    models = client.get("/api/v1/ml/models").json()
    assert models["pool"] is False and "no ML worker" in models["message"]


def test_no_redis_is_a_503(client_for: Callable[..., TestClient]) -> None:
    client = client_for(with_redis=False)
    assert "PAPERSHELF_REDIS_URL" in error(
        client.post("/api/v1/ml/tokenize", content=image_bytes("JPEG")), 503, "ml_unavailable"
    )
    assert client.get("/api/v1/ml/models").json()["pool"] is False


def test_thumbnail_route(client_for: Callable[..., TestClient], site_settings: Any) -> None:
    client = client_for()
    error(client.get(f"/api/v1/papers/{ID}/thumbnail.png"), 404, "not_found")
    assert "thumbnail.png" not in client.get(f"/arxiv/{ID}").text  # no picture, no <img>
    error(client.get("/api/v1/papers/not-an-id/thumbnail.png"), 400)
    picture = thumbnails.encode_png(Image.new("RGB", (64, 64), (1, 2, 3)))
    from app.settings import get_settings

    engine = make_engine(get_settings().database_url_resolved)
    with engine.begin() as conn:
        thumbnails.upsert(
            conn,
            [thumbnails.Written(ID, "generated", "diff-1", picture, solver="ddim", nfe=5, seed=3)],
        )
    engine.dispose()
    got = client.get(f"/api/v1/papers/{ID}v1/thumbnail.png")
    assert got.status_code == 200 and got.content == picture
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-thumbnail-source"] == "generated"
    again = client.get(
        f"/api/v1/papers/{ID}/thumbnail.png", headers={"If-None-Match": got.headers["etag"]}
    )
    assert again.status_code == 304

    # The card shows it, lazily loaded; a paper without one shows no <img>.
    page = client.get(f"/arxiv/{ID}").text
    assert f'src="/api/v1/papers/{ID}/thumbnail.png?v=' in page and 'loading="lazy"' in page

    # A placeholder an older pool drew with the Fashion model (garments) is not served.
    engine = make_engine(get_settings().database_url_resolved)
    with engine.begin() as conn:
        fashion = "diffusion-fashion-0123456789"
        thumbnails.upsert(
            conn,
            [thumbnails.Written(ID, "generated", fashion, picture, solver="ddim", nfe=5, seed=3)],
        )
    engine.dispose()
    error(client.get(f"/api/v1/papers/{ID}/thumbnail.png"), 404, "not_found")


def test_openapi_documents_the_ml_routes(client_for: Callable[..., TestClient]) -> None:
    client = client_for(with_redis=False)
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/api/v1/ml/tokenize", "/api/v1/ml/decode", "/api/v1/ml/sample"} <= set(paths)
    tokenize = paths["/api/v1/ml/tokenize"]["post"]
    assert "image/png" in tokenize["requestBody"]["content"]
    assert {"413", "422", "503"} <= set(tokenize["responses"])
    assert "/api/v1/papers/{arxiv_id}/thumbnail.png" in paths
    sample = spec["components"]["schemas"]["SampleIn"]["properties"]
    assert sample["nfe"]["maximum"] == 50 and "amed_plugin" in sample["solver"]["enum"]
    # The site's own app serves them too, the thumbnail before the API's /papers/{id:path}.
    from app.main import create_app

    app = create_app()
    served = app.openapi()["paths"]
    assert "/api/v1/ml/sample" in served and "/api/v1/papers/{arxiv_id}/thumbnail.png" in served
    with TestClient(app, raise_server_exceptions=False) as main_client:
        assert "no thumbnail for" in error(
            main_client.get(f"/api/v1/papers/{ID}/thumbnail.png"), 404
        )
        assert main_client.get("/lab").status_code == 200


# --- with a real ML worker and real tiny checkpoints ------------------------------------------


@pytest.fixture
def ml_client(
    client_for: Callable[..., TestClient], shared_data: Path, tmp_path_factory: Any
) -> Iterator[TestClient]:
    pytest.importorskip("torch")
    from app.settings import get_settings
    from tests.workers.test_ml_pictures import build_tiny_models

    models = build_tiny_models(
        tmp_path_factory.getbasetemp() / "tiny-picture-models", shared_data / "images"
    )
    client = client_for(
        FSQ_PATH=str(models["fsq"]),
        DIFFUSION_PATH=str(models["diffusion"]),
        SUMMARIZER_DEVICE="cpu",
    )
    with PoolThread(get_settings()):
        yield client


def decode_png(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def test_with_a_running_ml_pool(ml_client: TestClient) -> None:
    client = ml_client
    models = client.get("/api/v1/ml/models").json()
    assert models["pool"] is True and models["fsq"]["grid"] == [16, 16]
    assert "amed_plugin" in models["diffusion"]["solvers"]

    jpeg = image_bytes("JPEG", size=(120, 90))
    done = client.post("/api/v1/ml/tokenize", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["grid"] == [16, 16] and len(body["tokens"]) == 16
    assert decode_png(body["reconstruction_png_base64"]).size == (64, 64)

    # An upload past the API's usual 64 KiB body limit, within PAPERSHELF_ML_MAX_IMAGE_BYTES.
    big = image_bytes("BMP", size=(300, 300))
    assert 64 * 1024 < len(big) < 4_000_000
    assert client.post("/api/v1/ml/tokenize", content=big).status_code == 200

    decoded = client.post("/api/v1/ml/decode", json={"tokens": body["tokens"]})
    assert decoded.status_code == 200
    assert decoded.json()["png_base64"] == body["reconstruction_png_base64"]
    assert "16×16" in error(
        client.post("/api/v1/ml/decode", json={"tokens": body["tokens"][:3]}), 422
    )
    assert "[0, 1000)" in error(
        client.post("/api/v1/ml/decode", json={"tokens": [[5000] * 16] * 16}), 422
    )

    sampled = client.post("/api/v1/ml/sample", json={"solver": "amed_plugin", "nfe": 5, "count": 2})
    assert sampled.status_code == 200, sampled.text
    out = sampled.json()
    assert (out["solver"], out["nfe"], out["seeds"]) == ("amed_plugin", 5, [0, 1])
    assert len(out["pngs_base64"]) == 2 and out["seconds"] > 0
    one = client.post("/api/v1/ml/sample", json={"solver": "amed_plugin", "nfe": 5, "seeds": [1]})
    assert one.json()["pngs_base64"][0] == out["pngs_base64"][1]  # deterministic per seed
    assert "not available at NFE 3" in error(
        client.post("/api/v1/ml/sample", json={"solver": "amed_plugin", "nfe": 3}),
        422,
        "invalid_input",
    )
    heun = client.post("/api/v1/ml/sample", json={"solver": "heun", "nfe": 2})
    assert heun.status_code in (200, 422)  # Heun cannot hit every NFE: a clear 422, never 500


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
BODIES = st.dictionaries(
    st.sampled_from(["solver", "nfe", "seed", "count", "seeds", "tokens", "x"]), JSON, max_size=4
)


def test_no_input_makes_a_500(client_for: Callable[..., TestClient]) -> None:
    """Any JSON to decode/sample and any bytes to tokenize: 4xx or 503 (no pool here)."""
    client = client_for(ML_MAX_IMAGE_BYTES="5000")

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(body=BODIES, raw=st.binary(max_size=6000))
    def check(body: dict[str, Any], raw: bytes) -> None:
        for path in ("/api/v1/ml/decode", "/api/v1/ml/sample"):
            status = client.post(path, json=body).status_code
            assert status in (422, 503), (path, body, status)
        status = client.post("/api/v1/ml/tokenize", content=raw).status_code
        assert status in (413, 422, 503), status

    check()


def test_a_pool_without_the_model_or_too_busy_is_refused(
    configure: Callable[..., Settings],
) -> None:
    """A live worker (its health key) announcing only a diffusion model: a tokenizer job is
    refused at once; a job nobody takes in time is a timeout that says it is still queued."""
    from app.jobs import pictures as pool

    settings = configure()
    with redis.Redis.from_url(REDIS_URL) as client:
        client.set(f"{settings.ml_queue}:health", "alive", ex=30)
        client.set(pool.pictures_key(settings), json.dumps({"fsq": None, "diffusion": {}}))
    try:
        with pytest.raises(pool.PoolUnavailable, match=r"without the FSQ tokenizer.*train-fsq"):
            asyncio.run(pool.call(settings, pool.TOKENIZE_FUNCTION, [b""], needs=("fsq",)))
        with pytest.raises(pool.PoolTimeout, match=r"within 0\.3 s .*still queued"):
            asyncio.run(
                pool.call(settings, pool.SAMPLE_FUNCTION, "ddim", 3, [0], needs=(), timeout=0.3)
            )
    finally:
        with redis.Redis.from_url(REDIS_URL) as client:
            found = list(client.scan_iter(match=f"*{settings.ml_queue}*"))
            if found:
                client.delete(*found)
