"""The ML pool's picture API under `/api/v1/ml/`, and the stored thumbnails.

- `GET  /api/v1/ml/models`: whether an ML worker runs, and which picture models it loaded;
- `POST /api/v1/ml/tokenize`: an image (the request body, `Content-Type: image/…`, at most
  PAPERSHELF_ML_MAX_IMAGE_BYTES) → its FSQ token grid and the reconstruction (PNG, base64);
- `POST /api/v1/ml/decode`: a token grid (JSON) → the PNG (base64);
- `POST /api/v1/ml/sample`: solver, NFE (1–50) and seeds (at most 16) → PNGs and the time;
- `GET  /api/v1/papers/{id}/thumbnail.png`: a paper's stored thumbnail (404 when none).

The web process checks what it can without the model (Pillow decodes the upload fully; the
token grid's shape and range against what the pool announced) and answers bad input with
422, an oversize upload with 413. The work itself runs on the ML pool (app.jobs.pictures
queues it by name and waits with a timeout): no running pool, or one without the model, is
a 503 at once, a pool too busy to answer in time a 503 too. Nothing here imports torch.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.artifacts import thumbnails
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.jobs import pictures as pool
from app.settings import Settings
from app.web.api.params import PaperId
from app.web.api.schemas import DecodeIn, DecodeOut, ModelsOut, SampleIn, SampleOut, TokenizeOut
from app.web.deps import EngineDep, SettingsDep
from app.web.errors import ApiError, ApiRoute, error_responses
from app.web.http import NOT_MODIFIED, THUMBNAIL_CACHE, cache_headers, not_modified

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)

TOKENIZE_TIMEOUT_S = 60.0
SAMPLE_TIMEOUT_S = 120.0
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp")

ERRORS = error_responses(
    {
        413: "The image is larger than PAPERSHELF_ML_MAX_IMAGE_BYTES",
        422: "Not an image, a corrupt one, or parameters/tokens the model cannot take",
        502: "The ML job failed (not because of the input)",
        503: "No ML worker runs, it lacks the model, or it did not answer in time",
    }
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pool_error(exc: Exception) -> ApiError:
    if isinstance(exc, pool.PoolUnavailable):
        return ApiError(503, "ml_unavailable", str(exc))
    if isinstance(exc, pool.PoolTimeout):
        return ApiError(503, "ml_busy", str(exc))
    return ApiError(502, "ml_failed", str(exc))


async def run_job(
    settings: Settings, function: str, *args: Any, needs: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """The job's result; an ApiError when the pool or the job refused."""
    try:
        result = await pool.call(settings, function, *args, needs=needs, timeout=timeout)
    except (pool.PoolUnavailable, pool.PoolTimeout, pool.PoolFailed) as exc:
        raise _pool_error(exc) from None
    if "error" in result:
        status = int(result.get("status", 422))
        code = "invalid_input" if status == 422 else "ml_unavailable"
        raise ApiError(status, code, str(result["error"]))
    return result


async def read_image(request: Request, settings: Settings) -> bytes:
    """The body, refused (413) as soon as it passes the size limit."""
    limit = settings.ml_max_image_bytes
    too_big = ApiError(413, "too_large", f"the image is larger than the limit of {limit} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise too_big
    return bytes(body)


@router.get("/ml/models", tags=["ml"], response_model=ModelsOut, responses=ERRORS)
async def api_models(settings: SettingsDep) -> Response:
    """Whether an ML worker runs and which picture models it announced."""
    try:
        async with pool.quick_pool(settings) as redis:
            state = await pool.pool_state(redis, settings)
    except pool.PoolUnavailable as exc:
        return JSONResponse(ModelsOut(pool=False, message=str(exc)).model_dump())
    except pool.REDIS_ERRORS as exc:
        message = f"Redis is unreachable ({type(exc).__name__})"
        return JSONResponse(ModelsOut(pool=False, message=message).model_dump())
    if state is None:
        out = ModelsOut(pool=False, message=pool.missing_reason(None, ()))
    else:
        out = ModelsOut(
            pool=True,
            fsq=state.get("fsq"),
            diffusion=state.get("diffusion"),
            missing=state.get("missing") or {},
        )
    return JSONResponse(out.model_dump())


@router.post(
    "/ml/tokenize",
    tags=["ml"],
    response_model=TokenizeOut,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The image file itself (PNG, JPEG, WebP, GIF or BMP)",
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES},
        }
    },
)
async def api_tokenize(request: Request, settings: SettingsDep) -> Response:
    """FSQ-tokenize an image: fitted into 64×64 on white, encoded to a token grid, decoded
    back. Send the image as the request body."""
    data = await read_image(request, settings)
    try:
        await run_in_threadpool(thumbnails.check_image, data)
    except thumbnails.BadImage as exc:
        raise ApiError(422, "bad_image", str(exc)) from None
    result = await run_job(
        settings, pool.TOKENIZE_FUNCTION, [data], needs=("fsq",), timeout=TOKENIZE_TIMEOUT_S
    )
    item = result["items"][0]
    out = TokenizeOut(
        model=result["model"],
        levels=result["levels"],
        grid=result["grid"],
        codebook_size=result["codebook_size"],
        tokens=item["tokens"],
        input_png_base64=b64(item["input_png"]),
        reconstruction_png_base64=b64(item["reconstruction_png"]),
        mse=item["mse"],
        psnr=item["psnr"],
    )
    return JSONResponse(out.model_dump())


@router.post("/ml/decode", tags=["ml"], response_model=DecodeOut, responses=ERRORS)
async def api_decode(body: DecodeIn, settings: SettingsDep) -> Response:
    """Draw a token grid with the pool's FSQ tokenizer."""
    if not body.tokens or not body.tokens[0]:
        raise ApiError(422, "invalid_tokens", "the token grid is empty")
    result = await run_job(
        settings,
        pool.DECODE_FUNCTION,
        [body.tokens],
        needs=("fsq",),
        timeout=TOKENIZE_TIMEOUT_S,
    )
    return JSONResponse(
        DecodeOut(model=result["model"], png_base64=b64(result["pngs"][0])).model_dump()
    )


@router.post("/ml/sample", tags=["ml"], response_model=SampleOut, responses=ERRORS)
async def api_sample(body: SampleIn, settings: SettingsDep) -> Response:
    """Sample images from the diffusion model: the same seed gives the same image."""
    result = await run_job(
        settings,
        pool.SAMPLE_FUNCTION,
        body.solver,
        body.nfe,
        body.seed_list(),
        needs=("diffusion",),
        timeout=SAMPLE_TIMEOUT_S,
    )
    out = SampleOut(
        model=result["model"],
        solver=result["solver"],
        nfe=result["nfe"],
        seeds=result["seeds"],
        shape=result["shape"],
        seconds=result["seconds"],
        pngs_base64=[b64(p) for p in result["pngs"]],
    )
    return JSONResponse(out.model_dump())


def _stored(engine: Engine, arxiv_id: str) -> thumbnails.Stored | None:
    with engine.connect() as conn:
        # Served as cards show them: a hidden (Fashion) placeholder is a 404 here too.
        return thumbnails.get(conn, arxiv_id, shown_only=True)


@router.get(
    "/papers/{arxiv_id:path}/thumbnail.png",
    tags=["ml"],
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The thumbnail (64×64 or larger)"},
        **NOT_MODIFIED,
        **error_responses(
            {400: "Not a paper id", 404: "No thumbnail for this paper (yet)"}, common=False
        ),
    },
)
async def api_thumbnail(arxiv_id: PaperId, request: Request, engine: EngineDep) -> Response:
    """A paper's thumbnail: its PDF's first page as FSQ tokens decoded, or a placeholder
    the diffusion model generated (header `X-Thumbnail-Source`: pdf | generated)."""
    try:
        canonical, _version = parse_arxiv_id(arxiv_id)
    except InvalidArxivId as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    found = await run_in_threadpool(_stored, engine, canonical)
    if found is None:
        raise ApiError(404, "not_found", f"no thumbnail for {canonical}")
    headers = {
        **cache_headers(found.etag, THUMBNAIL_CACHE),
        "X-Thumbnail-Source": found.source,
        "X-Thumbnail-Model": found.model_version,
    }
    if not_modified(request, found.etag):
        return Response(status_code=304, headers=headers)
    return Response(found.png, media_type="image/png", headers=headers)
