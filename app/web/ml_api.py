"""The ML pool's picture API under `/api/v1/ml/`, and the stored thumbnails.

- `GET  /api/v1/ml/models`: whether an ML worker runs, and which picture models it loaded;
- `POST /api/v1/ml/tokenize`: an image (the request body, `Content-Type: image/…`, at most
  PAPERSHELF_ML_MAX_IMAGE_BYTES) → its FSQ token grid and the reconstruction (PNG, base64);
- `POST /api/v1/ml/decode`: a token grid (JSON) → the PNG (base64);
- `POST /api/v1/ml/sample`: solver, NFE (1–50) and seeds (at most 16) → PNGs and the time;
- `GET  /api/v1/papers/{id}/thumbnail.png`: a paper's stored thumbnail (404 when none).

The web process checks what it can without the model (Pillow decodes the upload fully; the
token grid's shape and range against what the pool announced) and answers bad input with
422, an oversize upload with 413. The work itself runs on the ML pool (workers.pictures
queues it by name and waits with a timeout): no running pool, or one without the model, is
a 503 at once, a pool too busy to answer in time a 503 too. Nothing here imports torch.

Include this router before the API router, whose `/papers/{id:path}` would otherwise answer
the thumbnail's path.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from app import thumbnails
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.settings import Settings
from app.web.api import ERRORS as API_ERRORS
from app.web.api import ErrorBody
from app.web.deps import EngineDep, SettingsDep, error_response
from workers import pictures as pool

router = APIRouter()

# Mirrors ml.diffusion.samplers.SOLVERS (not imported: that module needs torch).
SOLVERS = ("ddim", "heun", "dpm2m", "dpm3m", "ipndm", "amed", "amed_plugin")
Solver = Literal["ddim", "heun", "dpm2m", "dpm3m", "ipndm", "amed", "amed_plugin"]
MAX_SAMPLES = 16
MAX_NFE = 50
MAX_GRID = 64  # rows and columns a token grid may have before the model's own check
TOKENIZE_TIMEOUT_S = 60.0
SAMPLE_TIMEOUT_S = 120.0
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp")
THUMBNAIL_CACHE = "public, max-age=86400"


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    **API_ERRORS,
    413: _err("The image is larger than PAPERSHELF_ML_MAX_IMAGE_BYTES"),
    422: _err("Not an image, a corrupt one, or parameters/tokens the model cannot take"),
    502: _err("The ML job failed (not because of the input)"),
    503: _err("No ML worker runs, it lacks the model, or it did not answer in time"),
}


# --- models -----------------------------------------------------------------------------------


class FsqInfo(BaseModel):
    version: str
    levels: list[int]
    grid: list[int] = Field(description="Token grid [rows, columns]")
    codebook_size: int


class DiffusionInfo(BaseModel):
    version: str
    shape: list[int] = Field(description="[channels, height, width] of a sample")
    solvers: list[str] = Field(description="Solvers available (AMED ones need a predictor)")


class ModelsOut(BaseModel):
    pool: bool = Field(description="Whether a live ML worker is there")
    fsq: FsqInfo | None = None
    diffusion: DiffusionInfo | None = None
    missing: dict[str, str] = Field(default_factory=dict, description="Why a model is absent")
    message: str | None = None


class TokenizeOut(BaseModel):
    model: str = Field(description="The tokenizer's version")
    levels: list[int]
    grid: list[int]
    codebook_size: int
    tokens: list[list[int]] = Field(description="The token grid, row by row")
    input_png_base64: str = Field(description="The image as the tokenizer saw it (64×64)")
    reconstruction_png_base64: str = Field(description="Decoded from the tokens")
    mse: float = Field(description="Mean squared error of the reconstruction (pixels in [0, 1])")
    psnr: float | None = Field(description="PSNR in dB (null when identical)")


class DecodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: list[Annotated[list[int], Field(max_length=MAX_GRID)]] = Field(
        max_length=MAX_GRID, description="A token grid, row by row (e.g. 16×16)"
    )


class DecodeOut(BaseModel):
    model: str
    png_base64: str


class SampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    solver: Solver = "amed_plugin"
    nfe: int = Field(5, ge=1, le=MAX_NFE, description="Network evaluations")
    seed: int = Field(0, ge=0, lt=2**63, description="First seed (with `count`)")
    count: int = Field(1, ge=1, le=MAX_SAMPLES, description="Samples: seeds seed…seed+count-1")
    seeds: list[Annotated[int, Field(ge=0, lt=2**63)]] | None = Field(
        None, min_length=1, max_length=MAX_SAMPLES, description="Explicit seeds instead"
    )

    @model_validator(mode="after")
    def _seed_range(self) -> SampleIn:
        if self.seeds is None and self.seed + self.count > 2**63:
            raise ValueError("seed + count must stay below 2^63")
        return self

    def seed_list(self) -> list[int]:
        return (
            list(self.seeds)
            if self.seeds is not None
            else list(range(self.seed, self.seed + self.count))
        )


class SampleOut(BaseModel):
    model: str = Field(description="The diffusion model's version")
    solver: str
    nfe: int
    seeds: list[int]
    shape: list[int]
    seconds: float = Field(description="Sampling wall time on the ML pool")
    pngs_base64: list[str]


# --- shared steps -----------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pool_error(exc: Exception) -> JSONResponse:
    if isinstance(exc, pool.PoolUnavailable):
        return error_response(503, "ml_unavailable", str(exc))
    if isinstance(exc, pool.PoolTimeout):
        return error_response(503, "ml_busy", str(exc))
    return error_response(502, "ml_failed", str(exc))


async def run_job(
    settings: Settings, function: str, *args: Any, needs: tuple[str, ...], timeout: float
) -> dict[str, Any] | JSONResponse:
    """The job's result, or the error response to send."""
    try:
        result = await pool.call(settings, function, *args, needs=needs, timeout=timeout)
    except (pool.PoolUnavailable, pool.PoolTimeout, pool.PoolFailed) as exc:
        return _pool_error(exc)
    if "error" in result:
        status = int(result.get("status", 422))
        code = "invalid_input" if status == 422 else "ml_unavailable"
        return error_response(status, code, str(result["error"]))
    return result


async def read_image(request: Request, settings: Settings) -> bytes | JSONResponse:
    """The body, refused as soon as it passes the size limit (413)."""
    limit = settings.ml_max_image_bytes
    too_big = error_response(
        413, "too_large", f"the image is larger than the limit of {limit} bytes"
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return too_big
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return too_big
    return bytes(body)


# --- routes -----------------------------------------------------------------------------------


@router.get("/api/v1/ml/models", tags=["ml"], response_model=ModelsOut, responses=ERRORS)
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
    "/api/v1/ml/tokenize",
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
    if isinstance(data, JSONResponse):
        return data
    try:
        await run_in_threadpool(thumbnails.check_image, data)
    except thumbnails.BadImage as exc:
        return error_response(422, "bad_image", str(exc))
    result = await run_job(
        settings, pool.TOKENIZE_FUNCTION, [data], needs=("fsq",), timeout=TOKENIZE_TIMEOUT_S
    )
    if isinstance(result, JSONResponse):
        return result
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


@router.post("/api/v1/ml/decode", tags=["ml"], response_model=DecodeOut, responses=ERRORS)
async def api_decode(body: DecodeIn, settings: SettingsDep) -> Response:
    """Draw a token grid with the pool's FSQ tokenizer."""
    if not body.tokens or not body.tokens[0]:
        return error_response(422, "invalid_tokens", "the token grid is empty")
    result = await run_job(
        settings,
        pool.DECODE_FUNCTION,
        [body.tokens],
        needs=("fsq",),
        timeout=TOKENIZE_TIMEOUT_S,
    )
    if isinstance(result, JSONResponse):
        return result
    return JSONResponse(
        DecodeOut(model=result["model"], png_base64=b64(result["pngs"][0])).model_dump()
    )


@router.post("/api/v1/ml/sample", tags=["ml"], response_model=SampleOut, responses=ERRORS)
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
    if isinstance(result, JSONResponse):
        return result
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


def _stored(engine: Any, arxiv_id: str) -> thumbnails.Stored | None:
    with engine.connect() as conn:
        return thumbnails.get(conn, arxiv_id)


@router.get(
    "/api/v1/papers/{arxiv_id:path}/thumbnail.png",
    tags=["ml"],
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The thumbnail (64×64 or larger)"},
        304: {"description": "Not modified (the `If-None-Match` ETag matches)"},
        400: _err("Not a paper id"),
        404: _err("No thumbnail for this paper (yet)"),
    },
)
async def api_thumbnail(arxiv_id: str, request: Request, engine: EngineDep) -> Response:
    """A paper's thumbnail: its PDF's first page as FSQ tokens decoded, or a placeholder
    the diffusion model generated (header `X-Thumbnail-Source`: pdf | generated)."""
    try:
        canonical, _version = parse_arxiv_id(arxiv_id)
    except InvalidArxivId as exc:
        return error_response(400, "bad_request", str(exc))
    found = await run_in_threadpool(_stored, engine, canonical)
    if found is None:
        return error_response(404, "not_found", f"no thumbnail for {canonical}")
    headers = {
        "ETag": found.etag,
        "Cache-Control": THUMBNAIL_CACHE,
        "X-Thumbnail-Source": found.source,
        "X-Thumbnail-Model": found.model_version,
    }
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.png, media_type="image/png", headers=headers)
