"""Thumbnails: what each kind costs per paper, through the ML pool's own code path
(`workers.ml.pictures.make_thumbnails`): time and bytes stored.

    python -m bench.thumbnails                     # default-size models trained briefly here
    python -m bench.thumbnails --fsq DIR --diffusion DIR   # your trained checkpoints
    python -m bench.thumbnails --quick             # tiny models, few papers (< 1 minute)
    python -m bench.thumbnails --json out.json

Two kinds, the same papers:
- placeholder (the baseline): sampled by the plots diffusion model with the configured solver
  (AMED-Plugin at NFE 5; iPNDM when the checkpoint lacks that predictor), in the pool's
  batches; stored: the PNG.
- PDF first page: the PDF rendered (pypdfium2), its top square tokenized by the FSQ
  tokenizer and decoded; stored: the PNG and the 16×16 uint16 tokens (512 bytes).

The PDFs are made here (no network): a letter page with text-like lines and one of the real
plotnine figures (`images/plotnine-plots/plotnine_baseline_png.tar`), saved by Pillow as a
raster PDF. A real arXiv first page is vector text and renders more slowly; and each PDF is
a download through the deployment's arXiv limiter, one request every
PAPERSHELF_ARXIV_MIN_INTERVAL seconds (3), which bounds the PDF kind's wall time per paper
however fast the model is. The table says both. Times are per paper on this machine, with
one torch thread.

Without checkpoints the models are trained here briefly (default size; `--train-steps`):
the time per paper depends only on the architecture, but the bytes of a placeholder PNG
depend on what the model learned (an under-trained model draws noise, which compresses
badly), so pass your trained `--diffusion` for representative sizes.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from bench.ingest import find_data

if TYPE_CHECKING:
    from ml.pictures import PictureModels

PLOTS_TAR = Path("images") / "plotnine-plots" / "plotnine_baseline_png.tar"
PAGE = (612, 792)  # US letter at 72 dpi, as arXiv's PDFs mostly are
TOKEN_BYTES = 2  # uint16 per token (app.artifacts.thumbnails.pack_tokens)


def figures(data: Path, n: int) -> list[Image.Image]:
    """The first `n` real plotnine figures (PNG), as RGB."""
    out: list[Image.Image] = []
    with tarfile.open(data / PLOTS_TAR) as tar:
        for member in tar:
            if len(out) == n:
                break
            if not member.isfile() or not member.name.endswith(".png"):
                continue
            f = tar.extractfile(member)
            if f is not None:
                out.append(Image.open(io.BytesIO(f.read())).convert("RGB"))
    return out


def synthetic_pdf(figure: Image.Image, i: int) -> bytes:
    """A first page: title and author lines, two columns of text-like lines, one figure."""
    page = Image.new("RGB", PAGE, "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle((110, 60, 500 - (i % 5) * 20, 74), fill=(20, 20, 20))  # the title
    draw.rectangle((180, 90, 430, 98), fill=(90, 90, 90))  # authors
    for row in range(24):
        y = 130 + row * 11
        draw.rectangle((72, y, 300, y + 5), fill=(60, 60, 60))
        if y < 300:
            draw.rectangle((312, y, 540, y + 5), fill=(60, 60, 60))
    fig = figure.copy()
    fig.thumbnail((228, 228))
    page.paste(fig, (312, 310))
    for row in range(30):
        y = 420 + row * 11
        draw.rectangle((72, y, 300, y + 5), fill=(60, 60, 60))
        if y > 550:
            draw.rectangle((312, y, 540, y + 5), fill=(60, 60, 60))
    buf = io.BytesIO()
    page.save(buf, format="PDF", resolution=72)
    return buf.getvalue()


def reference_png_bytes(data: Path) -> float:
    """Mean PNG bytes of the 495 real 64×64 plots, stored as the pool stores a picture: what
    a well-trained model's pictures approach (a briefly trained one draws noise)."""
    from ml.images import load_plots
    from workers.ml.pictures import to_png

    plots = load_plots(data / "images")
    return statistics.fmean(len(to_png(img)) for img in [*plots.train, *plots.held_out])


def train_models(
    data: Path, root: Path, *, quick: bool, steps: int | None, amed_samples: int | None
) -> dict[str, Any]:
    """An FSQ tokenizer and a plots diffusion model with an AMED-Plugin predictor for NFE 5."""
    from ml.diffusion import checkpoint
    from ml.diffusion.amed import train_amed
    from ml.diffusion.train import DiffusionTrainConfig, train_diffusion
    from ml.fsq.train import FSQTrainConfig, train_tokenizer

    images = data / "images"
    n = steps or (3 if quick else 300)
    started = time.perf_counter()
    train_tokenizer(
        FSQTrainConfig(
            images_dir=images,
            steps=n,
            batch=4 if quick else 32,
            width=8 if quick else 32,
            out=root / "fsq",
            device="cpu",
        )
    )
    done = train_diffusion(
        DiffusionTrainConfig(
            images_dir=images,
            dataset="plots",
            out=root / "diffusion",
            steps=n,
            batch=4 if quick else 64,
            size="tiny" if quick else "default",
            limit=32 if quick else None,
            device="cpu",
            resume=False,
            tokenizer=root / "fsq",
        )
    )
    predictor = train_amed(
        done.model,
        solver="amed_plugin",
        nfe=5,
        samples=amed_samples or (4 if quick else 128),
        batch=4 if quick else 16,
        shape=tuple(done.model.cfg.shape),
    )
    checkpoint.save_amed(root / "diffusion", predictor)
    return {
        "fsq": root / "fsq",
        "diffusion": root / "diffusion",
        "trained_here": {"steps": n, "seconds": round(time.perf_counter() - started, 1)},
    }


def measure(
    models: PictureModels, pdfs: dict[str, bytes], batch: int, settings: Any
) -> dict[str, Any]:
    """Both kinds for the same papers, through `make_thumbnails` (the pool's path)."""
    from app.artifacts.thumbnails import Pending
    from workers.ml.pictures import make_thumbnails

    ids = list(pdfs)
    pending = [Pending(arxiv_id, 1) for arxiv_id in ids]
    out: dict[str, Any] = {}
    for kind, given in (("placeholder", {}), ("pdf", pdfs)):
        make_thumbnails(models, settings, pending[:2], given)  # warm-up (first-call costs)
        rows = []
        started = time.perf_counter()
        for i in range(0, len(pending), batch):
            rows += make_thumbnails(models, settings, pending[i : i + batch], given)
        seconds = time.perf_counter() - started
        sources = {r.source for r in rows}
        expected = "pdf" if kind == "pdf" else "generated"
        if sources != {expected} or len(rows) != len(ids):
            raise SystemExit(f"bench: the {kind} run made {sorted(sources)} for {len(rows)} papers")
        png = [len(r.png) for r in rows]
        tokens = [len(r.tokens or b"") for r in rows]
        out[kind] = {
            "papers": len(rows),
            "seconds_per_paper": seconds / len(rows),
            "png_bytes_mean": statistics.fmean(png),
            "token_bytes": statistics.fmean(tokens),
            "stored_bytes_per_paper": statistics.fmean(
                p + t for p, t in zip(png, tokens, strict=True)
            ),
            "model": rows[0].model_version,
            "solver": rows[0].solver,
            "nfe": rows[0].nfe,
        }
    out["pdf"]["pdf_download_bytes_mean"] = statistics.fmean(len(b) for b in pdfs.values())
    return out


def report(result: dict[str, Any]) -> None:
    base, pdf = result["placeholder"], result["pdf"]
    wait = result["arxiv_min_interval"]
    print(
        f"{result['papers']} papers, batches of {result['batch']}, 1 torch thread; "
        f"models: {pdf['model']} (tokens), {base['model']} ({base['solver']}, NFE {base['nfe']})"
    )
    print(f"{'kind':<24}{'s/paper':>10}{'PNG B':>9}{'tokens B':>10}{'stored B':>10}")
    for name, r in (("placeholder (baseline)", base), ("PDF first page", pdf)):
        print(
            f"{name:<24}{r['seconds_per_paper']:>10.4f}{r['png_bytes_mean']:>9.0f}"
            f"{r['token_bytes']:>10.0f}{r['stored_bytes_per_paper']:>10.0f}"
        )
    print(
        "reference: the real 64×64 plots stored as PNG average "
        f"{result['reference_png_bytes']:.0f} B"
    )
    print(
        f"ratio PDF / placeholder: time {result['ratio']['seconds']:.2f}×, "
        f"stored bytes {result['ratio']['stored_bytes']:.2f}×"
    )
    print(
        f"PDF kind, wall time per paper with arXiv's spacing: ≥ {wait:g} s (one PDF request "
        f"every {wait:g} s across the deployment; the synthetic PDFs here average "
        f"{pdf['pdf_download_bytes_mean'] / 1000:.0f} kB)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny models, 8 papers (< 1 minute)")
    ap.add_argument("--fsq", type=Path, default=None, help="a trained FSQ tokenizer")
    ap.add_argument("--diffusion", type=Path, default=None, help="a trained plots U-Net")
    ap.add_argument("--papers", type=int, default=None, help="papers per kind [64; quick 8]")
    ap.add_argument("--batch", type=int, default=32, help="papers per model call [32]")
    ap.add_argument("--train-steps", type=int, default=None, help="training here [300]")
    ap.add_argument("--amed-samples", type=int, default=None, help="AMED draws here [128]")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from app.settings import Settings
    from ml.pictures import load_models

    torch.set_num_threads(1)
    data = find_data()
    n = args.papers or (8 if args.quick else 64)
    with tempfile.TemporaryDirectory(prefix="bench-thumbnails-") as tmp:
        root = Path(tmp)
        trained: dict[str, Any] = {}
        if args.fsq is None or args.diffusion is None:
            trained = train_models(
                data,
                root,
                quick=args.quick,
                steps=args.train_steps,
                amed_samples=args.amed_samples,
            )
        fsq = args.fsq or trained["fsq"]
        diffusion = args.diffusion or trained["diffusion"]
        models = load_models(fsq, diffusion, "cpu")
        if models.tokenizer is None or models.placeholder is None:
            raise SystemExit("bench: " + "; ".join(models.missing.values()))
        figs = figures(data, n)
        pdfs = {f"2607.{i:05d}": synthetic_pdf(figs[i % len(figs)], i) for i in range(n)}
        settings = Settings(data_dir=root, thumbnail_pdf_url="http://127.0.0.1:9/pdf")
        result: dict[str, Any] = {
            "papers": n,
            "batch": args.batch,
            "arxiv_min_interval": settings.arxiv_min_interval,
            "trained_here": trained.get("trained_here"),
            "reference_png_bytes": reference_png_bytes(data),
            **measure(models, pdfs, args.batch, settings),
        }
    base, pdf = result["placeholder"], result["pdf"]
    result["ratio"] = {
        "seconds": pdf["seconds_per_paper"] / base["seconds_per_paper"],
        "stored_bytes": pdf["stored_bytes_per_paper"] / base["stored_bytes_per_paper"],
    }
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
