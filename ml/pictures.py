"""The picture models the ML pool runs (the FSQ tokenizer and the diffusion model, loaded
once from explicit paths) and the model-facing work its jobs do with them:

- `tokenize`: images → FSQ token grids and their reconstructions;
- `decode`: token grids → pictures;
- `sample`: seeds → pictures with a solver at an NFE, timed;
- `render_first_page`, `tokenize_pages`, `placeholders`: what a paper's thumbnail is made
  of (its PDF's first page as tokens, else a picture sampled from the paper's own seed);
- `lab`: reconstructions at every FSQ codebook size found, one noise sampled by every
  solver at NFE 3/5/9 with timings, and the CE and EMO summarizers on one paper.

Images come in as RGB PIL images the caller has decoded and fitted to the tokenizer's
square; pictures go out through the caller's `encode` (a uint8 (H, W, C) array → bytes).
Either model may be missing: what needs it reports that instead of failing. Only a
diffusion model trained on the plots (scientific figures) draws placeholders: one trained
on Fashion-MNIST still serves /lab and the picture API, never a paper card. /lab can have a
model of its own (a Fashion one, as the solver benchmarks use), loaded beside the other.
Nothing here reads the deployment's settings or its store: the ML pool passes paths,
devices and options in.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ml.checkpoints import checkpoint_present

if TYPE_CHECKING:
    from ml.diffusion.inference import LoadedDiffusion
    from ml.fsq.inference import LoadedTokenizer
    from ml.summarizer import Summarizer

LAB_NFES = (3, 5, 9)
LAB_SEEDS = (0, 1)  # two samples per cell: small, quick, still shows the noise is shared
PDF_RENDER_SCALE = 0.5  # 36 dpi: plenty for a 64-pixel thumbnail
FALLBACK_SOLVER = "ipndm"
#: The data set a diffusion model must have learned to draw paper thumbnails.
PLACEHOLDER_DATASET = "plots"
TRAIN_PLACEHOLDER_MODEL = (
    "`papershelf ml train-fsq`, `papershelf ml train-diffusion --dataset plots`, then "
    "`papershelf ml train-amed`"
)
_DATASET_NAMES = {"fashion": "Fashion-MNIST (clothes)", "plots": "the plots"}

#: The caller's picture encoding: a uint8 (H, W, C) array, C = 1 or 3 → bytes.
Encode = Callable[[np.ndarray], bytes]


class InputError(ValueError):
    """The caller's input does not fit the model (answered as 422, not a failure)."""


def fsq_missing(path: Path) -> str:
    return f"no FSQ tokenizer checkpoint at {path}: run `papershelf ml train-fsq` first"


def diffusion_missing(path: Path) -> str:
    return (
        f"no diffusion checkpoint at {path}: run `papershelf ml train-diffusion --dataset "
        "plots` first"
    )


def placeholder_refused(path: Path, dataset: str | None) -> str:
    """Why the diffusion model at `path` draws no thumbnails, and what trains one that does."""
    learned = _DATASET_NAMES.get(dataset or "", "an unrecorded data set")
    return (
        f"the diffusion model at {path} was trained on {learned}, not on the plots: it makes "
        f"no paper thumbnails (it stays for /lab and the picture API); run "
        f"{TRAIN_PLACEHOLDER_MODEL} to train the thumbnail model there"
    )


@dataclass
class PictureModels:
    """The picture models the pool runs; a missing one is None with the reason in `missing`."""

    tokenizer: LoadedTokenizer | None = None
    # The configured diffusion model, whatever it learned (the picture API samples it).
    diffusion: LoadedDiffusion | None = None
    missing: dict[str, str] = field(default_factory=dict)
    # /lab's own diffusion model when one is found at its path (else /lab uses `diffusion`).
    lab_diffusion: LoadedDiffusion | None = None
    # The lab's extra checkpoints (other codebook sizes, the other summarizer), loaded once.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return self.tokenizer is not None or self.diffusion is not None

    @property
    def placeholder(self) -> LoadedDiffusion | None:
        """The diffusion model that draws thumbnails: the configured one if it learned the
        plots (why not is in `missing["placeholder"]`)."""
        d = self.diffusion
        return d if d is not None and d.dataset == PLACEHOLDER_DATASET else None

    @property
    def lab_model(self) -> LoadedDiffusion | None:
        return self.lab_diffusion or self.diffusion

    def thumbnail_solver(self, wanted: str, nfe: int) -> str:
        """`wanted`, or iPNDM (what AMED-Plugin builds on) when the checkpoint has no AMED
        predictor for `nfe`."""
        d = self.placeholder
        if d is None or wanted in d.solvers_available(nfe):
            return wanted
        return FALLBACK_SOLVER

    def describe(self) -> dict[str, Any]:
        """What each loaded model is ({"fsq": {...} | None, "diffusion": {...} | None})."""
        fsq = diffusion = None
        if (t := self.tokenizer) is not None:
            fsq = {
                "version": t.version,
                "levels": list(t.levels),
                "grid": list(t.grid),
                "codebook_size": int(t.codebook_size),
            }
        if (d := self.diffusion) is not None:
            diffusion = {
                "version": d.version,
                "dataset": d.dataset,
                "placeholders": self.placeholder is not None,
                "shape": list(d.shape),
                # "fsq <tokenizer version>" for a model of the tokenizer's codes, else "pixels".
                "space": f"fsq {d.space.version}" if d.space is not None else "pixels",
                "solvers": list(d.solvers_available()),
                "amed_nfes": d.predictor_nfes(),
            }
        lab = None
        if (d := self.lab_diffusion) is not None:
            lab = {"version": d.version, "dataset": d.dataset, "shape": list(d.shape)}
        return {"fsq": fsq, "diffusion": diffusion, "lab_diffusion": lab}


def load_models(
    fsq_path: Path, diffusion_path: Path, device: str, lab_diffusion_path: Path | None = None
) -> PictureModels:
    """Load whichever picture checkpoints exist onto `device` (torch is imported in here):
    the tokenizer, the diffusion model (its data set decides whether it draws thumbnails)
    and, when it is another checkpoint, /lab's diffusion model."""
    models = PictureModels()
    if checkpoint_present(fsq_path):
        from ml.fsq.inference import LoadedTokenizer

        models.tokenizer = LoadedTokenizer.load(fsq_path, device)
    else:
        models.missing["fsq"] = fsq_missing(fsq_path)
    from ml.diffusion.inference import LoadedDiffusion

    if checkpoint_present(diffusion_path):
        models.diffusion = LoadedDiffusion.load(diffusion_path, device)
        if models.placeholder is None:
            models.missing["placeholder"] = placeholder_refused(
                diffusion_path, models.diffusion.dataset
            )
    else:
        models.missing["diffusion"] = diffusion_missing(diffusion_path)
    lab = lab_diffusion_path
    if lab is not None and _other(lab, diffusion_path) and checkpoint_present(lab):
        models.lab_diffusion = LoadedDiffusion.load(lab, device)
    return models


def _other(a: Path, b: Path) -> bool:
    return Path(a).resolve() != Path(b).resolve()


def as_batch(images: Sequence[Image.Image]) -> np.ndarray:
    """(N, H, W, 3) uint8: the tokenizer's input."""
    return np.stack([np.asarray(img, dtype=np.uint8) for img in images])


# --- the interactive jobs' work -------------------------------------------------------------


def tokenize(
    tokenizer: LoadedTokenizer, images: Sequence[Image.Image], encode: Encode
) -> dict[str, Any]:
    """Each image's FSQ tokens and reconstruction."""
    batch = as_batch(images)
    tokens = tokenizer.encode(batch)
    recon = tokenizer.decode(tokens)
    items = []
    for original, grid, out in zip(batch, tokens, recon, strict=True):
        mse = pixel_mse(original, out)
        items.append(
            {
                "tokens": grid.astype(int).tolist(),
                "input_png": encode(original),
                "reconstruction_png": encode(out),
                "mse": mse,
                "psnr": psnr(mse),
            }
        )
    return {**_tokenizer_fields(tokenizer), "items": items}


def pixel_mse(a: np.ndarray, b: np.ndarray) -> float:
    """MSE with pixels in [0, 1], as `papershelf ml eval-fsq` reports it."""
    return float(np.mean((a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0) ** 2))


def psnr(mse: float) -> float | None:
    return None if mse <= 0 else 10 * math.log10(1.0 / mse)


def _tokenizer_fields(tokenizer: LoadedTokenizer) -> dict[str, Any]:
    return {
        "model": tokenizer.version,
        "levels": list(tokenizer.levels),
        "grid": list(tokenizer.grid),
        "codebook_size": int(tokenizer.codebook_size),
    }


def decode(
    tokenizer: LoadedTokenizer, grids: Sequence[Sequence[Sequence[int]]], encode: Encode
) -> dict[str, Any]:
    """Token grids (checked by the caller against the tokenizer's grid and codebook) →
    pictures."""
    images = tokenizer.decode(np.asarray(grids, dtype=np.int64))
    return {**_tokenizer_fields(tokenizer), "pngs": [encode(img) for img in images]}


def sample(
    diffusion: LoadedDiffusion, solver: str, nfe: int, seeds: Sequence[int], encode: Encode
) -> dict[str, Any]:
    """Samples for `seeds` (deterministic per seed), with the wall time."""
    if solver not in diffusion.solvers_available(nfe):
        raise InputError(
            f"solver {solver!r} is not available at NFE {nfe} (available: "
            f"{', '.join(diffusion.solvers_available(nfe))}; an AMED solver needs a predictor "
            "trained for that NFE: `papershelf ml train-amed`)"
        )
    start = time.perf_counter()
    try:
        images = diffusion.sample(list(seeds), solver, nfe)
    except ValueError as exc:  # an NFE the solver cannot hit, a missing predictor
        raise InputError(str(exc)) from None
    seconds = time.perf_counter() - start
    return {
        "model": diffusion.version,
        "solver": solver,
        "nfe": nfe,
        "seeds": list(seeds),
        "shape": list(diffusion.shape),
        "seconds": seconds,
        "pngs": [encode(img) for img in images],
    }


# --- thumbnails -----------------------------------------------------------------------------


def render_first_page(pdf: bytes) -> Image.Image:
    """The PDF's first page as an RGB image (pypdfium2; raises ValueError when unreadable)."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        raise ValueError(f"not a readable PDF: {exc}") from None
    try:
        if len(doc) == 0:
            raise ValueError("the PDF has no pages")
        page = doc[0]
        try:
            return page.render(scale=PDF_RENDER_SCALE).to_pil().convert("RGB")
        finally:
            page.close()
    finally:
        doc.close()


def tokenize_pages(
    tokenizer: LoadedTokenizer, pages: Sequence[Image.Image]
) -> list[tuple[list[list[int]], np.ndarray]]:
    """Per page (fitted to the tokenizer's square): its token grid and what it decodes to."""
    tokens = tokenizer.encode(as_batch(pages))
    recon = tokenizer.decode(tokens)
    return [(grid.tolist(), img) for grid, img in zip(tokens, recon, strict=True)]


def placeholders(
    diffusion: LoadedDiffusion, paper_ids: Sequence[str], solver: str, nfe: int
) -> list[tuple[int, np.ndarray]]:
    """Per paper: its seed and the picture sampled from it (the same on every run)."""
    from ml.diffusion.inference import seed_for_paper

    seeds = [seed_for_paper(paper_id) for paper_id in paper_ids]
    images = diffusion.sample(seeds, solver, nfe)
    return list(zip(seeds, images, strict=True))


# --- the lab --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabSetup:
    """Where the lab finds its checkpoints (the configured ones; others beside them) and how
    it runs them."""

    fsq_path: Path
    diffusion_path: Path
    summarizer_path: Path
    device: str
    beams: int
    lab_diffusion_path: Path | None = None


def fsq_checkpoints(main: Path) -> list[Path]:
    """The tokenizer at `main` and every `fsq*` checkpoint beside it (other codebook
    sizes), `main` first."""
    found = [main] if checkpoint_present(main) else []
    parent = main.parent
    if parent.is_dir():
        for p in sorted(parent.iterdir()):
            if p != main and p.name.startswith("fsq") and (p / "config.json").is_file():
                found.append(p)
    return found


def summarizer_checkpoints(main: Path) -> dict[str, Path]:
    """One summarizer checkpoint per kind of training objective, "ce" and "emo" (EMO mode 1
    or 2), read from each checkpoint's config.json (meta.objective): `main` first, then the
    folders beside it."""
    candidates = [main]
    if main.parent.is_dir():
        candidates += sorted(p for p in main.parent.iterdir() if p.is_dir() and p != main)
    out: dict[str, Path] = {}
    for path in candidates:
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            continue
        meta = config.get("meta") if isinstance(config, dict) else None
        objective = meta.get("objective") if isinstance(meta, dict) else None
        if config.get("format") and isinstance(objective, str):
            kind = "emo" if objective.startswith("emo") else objective
            out.setdefault(kind, path)
    return out


def _cached(models: PictureModels, key: str, load: Callable[[], Any]) -> Any:
    if key not in models.extra:
        models.extra[key] = load()
    return models.extra[key]


def lab_reconstructions(
    models: PictureModels,
    setup: LabSetup,
    images: Callable[[], Sequence[Image.Image]],
    encode: Encode,
) -> dict[str, Any]:
    """`images` is called only when a tokenizer is there to take them."""
    paths = fsq_checkpoints(setup.fsq_path)
    if not paths:
        return {"missing": fsq_missing(setup.fsq_path), "rows": []}
    batch = as_batch(images())
    rows = []
    for path in paths:
        if path == setup.fsq_path and models.tokenizer is not None:
            tok = models.tokenizer
        else:
            from ml.fsq.inference import LoadedTokenizer

            tok = _cached(models, f"fsq:{path}", partial(LoadedTokenizer.load, path, setup.device))
        recon = tok.reconstruct(batch)
        mse = pixel_mse(batch, recon)
        rows.append(
            {
                "name": path.name,
                **_tokenizer_fields(tok),
                "mse": mse,
                "psnr": psnr(mse),
                "pngs": [encode(img) for img in recon],
            }
        )
    rows.sort(key=lambda r: r["codebook_size"])
    return {"originals": [encode(img) for img in batch], "rows": rows}


def lab_solvers(models: PictureModels, setup: LabSetup, encode: Encode) -> dict[str, Any]:
    from ml.diffusion.samplers import SOLVERS

    diff = models.lab_model
    if diff is None:
        where = setup.lab_diffusion_path or setup.diffusion_path
        return {
            "missing": f"no diffusion checkpoint at {where} nor at {setup.diffusion_path}: run "
            f"`papershelf ml train-diffusion` (--dataset fashion writes /lab's model to {where})"
            if setup.lab_diffusion_path is not None
            else models.missing.get("diffusion") or diffusion_missing(setup.diffusion_path),
            "rows": [],
        }
    rows = []
    for solver in SOLVERS:
        cells = []
        for nfe in LAB_NFES:
            if solver not in diff.solvers_available(nfe):
                cells.append({"nfe": nfe, "error": f"no AMED predictor for NFE {nfe}"})
                continue
            try:
                result = sample(diff, solver, nfe, LAB_SEEDS, encode)
            except InputError as exc:
                cells.append({"nfe": nfe, "error": str(exc)})
                continue
            cells.append(
                {
                    "nfe": nfe,
                    "pngs": result["pngs"],
                    "seconds": result["seconds"],
                    "per_image_s": result["seconds"] / len(LAB_SEEDS),
                }
            )
        rows.append({"solver": solver, "cells": cells})
    return {
        "model": diff.version,
        "dataset": diff.dataset,
        "nfes": list(LAB_NFES),
        "seeds": list(LAB_SEEDS),
        "rows": rows,
    }


def lab_summaries(
    models: PictureModels,
    setup: LabSetup,
    paper: tuple[str, str] | None,
    loaded: Summarizer | None,
) -> dict[str, Any]:
    found = summarizer_checkpoints(setup.summarizer_path)
    lacking = [o for o in ("ce", "emo") if o not in found]
    if lacking:
        names = {"ce": "cross-entropy", "emo": "EMO"}
        return {
            "missing": "no summarizer checkpoint trained with "
            f"{' or '.join(names[o] for o in lacking)} "
            f"at or beside {setup.summarizer_path}: train one with "
            "`papershelf ml train-summarizer --objective "
            f"{'ce' if lacking[0] == 'ce' else 'emo1'}` into a folder beside it"
        }
    if paper is None:
        return {"missing": "no paper in the store to summarise"}
    from ml import summarizer

    out: dict[str, Any] = {}
    for objective in ("ce", "emo"):
        path = found[objective]
        if loaded is not None and path == setup.summarizer_path:
            model = loaded
        else:
            model = _cached(
                models, f"summarizer:{path}", partial(summarizer.load, path, setup.device)
            )
        start = time.perf_counter()
        text = model.summarize([paper], beams=setup.beams)[0]
        out[objective] = {
            "model": model.version,
            "tldr": " ".join(text.split()),
            "seconds": time.perf_counter() - start,
        }
    return out


def lab(
    models: PictureModels,
    setup: LabSetup,
    images: Callable[[], Sequence[Image.Image]],
    paper: tuple[str, str] | None,
    encode: Encode,
    loaded_summarizer: Summarizer | None = None,
) -> dict[str, Any]:
    """Everything /lab shows, each part saying what it lacks instead of failing."""
    return {
        "reconstructions": lab_reconstructions(models, setup, images, encode),
        "solvers": lab_solvers(models, setup, encode),
        "summaries": lab_summaries(models, setup, paper, loaded_summarizer),
    }
