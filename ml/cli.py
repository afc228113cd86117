"""`papershelf ml …`: train, evaluate and run the ML models.

Reached from the admin CLI's `ml` command, which imports this module only when an `ml`
command runs (so the rest of the CLI works without the ML extra) and passes the paths the
commands fall back to (`Defaults`, from its settings): nothing here reads the deployment's
settings. The model packages add their own commands (ml.fsq.cli, ml.diffusion.cli).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ml.console import BarReporter, data_path, fail, out, progress_bars

if TYPE_CHECKING:  # torch loads only when a command needs the model
    from ml.summarizer.inference import LoadedSummarizer


@dataclass(frozen=True)
class Defaults:
    """Where the commands look when an option is left out."""

    data_dir: Path  # scitldr/, arxiv/, images/ and models/cache/ below it
    summarizer: Path
    fsq: Path
    diffusion: Path  # the thumbnails' (plots)
    lab_diffusion: Path | None = None  # /lab's (Fashion-MNIST); None: beside `diffusion`


def _arxiv_files(paths: list[Path] | None, data_dir: Path) -> list[Path]:
    if paths:
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise fail(f"not a file: {missing[0]}")
        return paths
    return sorted((data_dir / "arxiv").glob("papers_*.jsonl.gz"))


def _load(path: Path, device: str) -> LoadedSummarizer:
    from ml.checkpoints import checkpoint_present
    from ml.summarizer.inference import LoadedSummarizer

    if not checkpoint_present(path):
        raise fail(f"no summarizer checkpoint in {path}: run `papershelf ml train-summarizer`")
    return LoadedSummarizer.from_checkpoint(path, device=device)


def _print_scores(rows: dict[str, dict[str, float]], title: str) -> None:
    cols = [
        "rouge1",
        "rouge2",
        "rougeL",
        "author_rouge1",
        "mauve",
        "distinct2",
        "repetition",
        "length",
    ]
    table = Table("system", *cols, title=title)
    for name, s in rows.items():
        table.add_row(
            name,
            *(
                f"{s[c]:.3f}" if c in ("mauve", "distinct2", "repetition") else f"{s[c]:.1f}"
                for c in cols
            ),
        )
    out.print(table)


def build(defaults: Defaults) -> typer.Typer:
    """The `papershelf ml` app, its options falling back to `defaults`."""
    # The picture models' commands live beside their code; torch loads only when one runs.
    from ml.diffusion.cli import register as register_diffusion
    from ml.fsq.cli import register as register_fsq

    cli = typer.Typer(
        help="Train, evaluate and run the ML models.", no_args_is_help=True, add_completion=False
    )

    @cli.command("train-summarizer")
    def train_summarizer(
        out_dir: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="Checkpoint directory "
                "(default: PAPERSHELF_SUMMARIZER_PATH or data_dir/models/summarizer).",
            ),
        ] = None,
        scitldr: Annotated[
            Path | None,
            typer.Option(
                help="SciTLDR-A directory with train.jsonl and dev.jsonl "
                "(default: data_dir/scitldr)."
            ),
        ] = None,
        arxiv: Annotated[
            list[Path] | None,
            typer.Option(
                help="JSON Lines of arXiv papers for the "
                "title task (default: data_dir/arxiv/papers_*.jsonl.gz)."
            ),
        ] = None,
        objective: Annotated[str, typer.Option(help="ce, emo1 or emo2")] = "emo1",
        seed: int = 0,
        epochs: Annotated[int | None, typer.Option(min=1, help="[default: 2]")] = None,
        arxiv_pairs: Annotated[
            int | None, typer.Option(min=0, help="Title-task pairs, 0 for none. [default: 1500]")
        ] = None,
        tldr_repeat: Annotated[int | None, typer.Option(min=1, help="[default: 2]")] = None,
        batch_size: Annotated[int | None, typer.Option(min=1, help="[default: 32]")] = None,
        lr: Annotated[float | None, typer.Option(help="[default: 0.0015]")] = None,
        layers: Annotated[int | None, typer.Option(min=1, help="[default: 2]")] = None,
        limit: Annotated[int | None, typer.Option(help="Only the first N SciTLDR pairs.")] = None,
        max_steps: Annotated[int | None, typer.Option(min=1)] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda…")] = "auto",
        encoder: Annotated[
            str | None,
            typer.Option(
                help="A local BERT-style checkpoint directory for the frozen encoder "
                "[default: the packaged all-MiniLM-L6-v2]."
            ),
        ] = None,
        init_from: Annotated[
            Path | None,
            typer.Option(
                help="Fine-tune: start from this checkpoint (e.g. one trained with --objective ce) "
                "instead of a fresh decoder."
            ),
        ] = None,
        warmup_steps: Annotated[int | None, typer.Option(min=0, help="[default: 50]")] = None,
        restart: Annotated[bool, typer.Option(help="Discard a saved training state.")] = False,
    ) -> None:
        """Train the TL;DR summarizer (resumes an interrupted run with the same settings)."""
        from ml.checkpoints import checkpoint_present
        from ml.emo import OBJECTIVES
        from ml.summarizer.train import STATE, TrainConfig, train

        if objective not in OBJECTIVES:
            raise fail(f"--objective must be one of {', '.join(OBJECTIVES)}")
        target = out_dir or defaults.summarizer
        if restart:
            (target / STATE).unlink(missing_ok=True)
        if init_from is not None and not checkpoint_present(init_from):
            raise fail(f"--init-from: no summarizer checkpoint in {init_from}")
        # Options left out keep the recipe's defaults (TrainConfig's), not None.
        given: dict[str, Any] = {
            "arxiv_pairs": arxiv_pairs,
            "tldr_repeat": tldr_repeat,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "warmup_steps": warmup_steps,
            "layers": layers,
            "limit": limit,
            "max_steps": max_steps,
            "encoder": encoder,
            "init_from": init_from,
        }
        cfg = TrainConfig(
            out=target,
            scitldr_dir=data_path(scitldr, defaults.data_dir / "scitldr", "scitldr"),
            arxiv_files=_arxiv_files(arxiv, defaults.data_dir),
            objective=objective,
            seed=seed,
            device=device,
            cache_dir=defaults.data_dir / "models" / "cache",
            **{k: v for k, v in given.items() if v is not None},
        )
        try:
            with progress_bars() as progress:
                result = train(cfg, BarReporter(progress))
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
        out.print(
            f"wrote {target} (version {result['version']}, {result['steps']} steps, "
            f"{result['train_seconds']} s)",
            markup=False,
            highlight=False,
        )

    @cli.command("eval-summarizer")
    def eval_summarizer(
        split: Annotated[
            str, typer.Option(help="dev or train (the test split is held out).")
        ] = "dev",
        checkpoint_dir: Annotated[Path | None, typer.Option("--checkpoint")] = None,
        scitldr: Annotated[Path | None, typer.Option()] = None,
        beams: Annotated[int, typer.Option(min=1)] = 1,
        limit: Annotated[int | None, typer.Option(min=1)] = None,
        baselines: Annotated[
            bool, typer.Option(help="Also score the title and the first sentence.")
        ] = True,
        device: str = "auto",
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Write the figures here.")
        ] = None,
    ) -> None:
        """ROUGE (multi-max and author-only), MAUVE-like, distinct-n, repetition and length."""
        from ml.summarizer.data import load_scitldr
        from ml.summarizer.evaluate import score, sentence_embedder

        if split not in ("dev", "train"):
            raise fail("--split must be dev or train (the SciTLDR test split is held out)")
        examples = load_scitldr(
            data_path(scitldr, defaults.data_dir / "scitldr", "scitldr") / f"{split}.jsonl"
        )[:limit]
        model = _load(checkpoint_dir or defaults.summarizer, device)
        refs = [e.targets for e in examples]
        embed = sentence_embedder(model.encoder, model.tokenizer, model.device)
        human = embed([r[0] for r in refs])
        rows: dict[str, dict[str, float]] = {}
        if baselines:
            rows["title"] = score([e.title for e in examples], refs, embed, human).as_dict()
            rows["first sentence"] = score([e.lead for e in examples], refs, embed, human).as_dict()
        started = time.perf_counter()
        with progress_bars() as progress:
            bar = BarReporter(progress)
            bar.phase(f"summarizing {split}", len(examples))
            preds = model.summarize(
                [(e.title, e.abstract) for e in examples], beams=beams, progress=bar.advance
            )
        seconds = time.perf_counter() - started
        rows[f"model {model.version}"] = score(preds, refs, embed, human).as_dict()
        _print_scores(
            rows,
            f"SciTLDR {split} ({len(examples)} papers; beams {beams}; "
            f"{len(examples) / seconds:.1f} TL;DRs/s)",
        )
        if json_path:
            json_path.write_text(
                json.dumps(
                    {
                        "split": split,
                        "papers": len(examples),
                        "beams": beams,
                        "version": model.version,
                        "scores": rows,
                        "examples": [
                            {"id": e.id, "tldr": p}
                            for e, p in zip(examples[:20], preds, strict=False)
                        ],
                    },
                    indent=2,
                )
            )

    @cli.command()
    def summarize(
        input_path: Annotated[
            Path,
            typer.Option(
                "--input",
                help="JSON Lines: id, title, abstract (or SciTLDR's paper_id, title, source).",
            ),
        ],
        output_path: Annotated[Path, typer.Option("--output", help="JSON Lines: id, tldr.")],
        checkpoint_dir: Annotated[Path | None, typer.Option("--checkpoint")] = None,
        beams: Annotated[int, typer.Option(min=1)] = 1,
        batch_size: Annotated[int, typer.Option(min=1)] = 32,
        device: str = "auto",
    ) -> None:
        """Write a TL;DR for every record of a JSON Lines file."""
        from ml.summarizer.data import read_records

        if not input_path.is_file():
            raise fail(f"{input_path}: no such file")
        try:
            records = list(read_records(input_path))
        except (ValueError, UnicodeDecodeError) as exc:
            raise fail(str(exc)) from None
        model = _load(checkpoint_dir or defaults.summarizer, device)
        with progress_bars() as progress:
            bar = BarReporter(progress)
            bar.phase("summarizing", len(records))
            tldrs = model.summarize(
                [(t, a) for _, t, a in records],
                beams=beams,
                batch_size=batch_size,
                progress=bar.advance,
            )
        tmp = output_path.with_name(f".{output_path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for (rid, _, _), tldr in zip(records, tldrs, strict=True):
                fh.write(json.dumps({"id": rid, "tldr": tldr}, ensure_ascii=False) + "\n")
        tmp.replace(output_path)
        out.print(
            f"wrote {len(records)} TL;DRs to {output_path} (model {model.version})",
            markup=False,
            highlight=False,
        )

    register_fsq(cli, images=defaults.data_dir / "images", checkpoint=defaults.fsq)
    register_diffusion(
        cli,
        images=defaults.data_dir / "images",
        checkpoint=defaults.diffusion,
        lab_checkpoint=defaults.lab_diffusion,
        tokenizer=defaults.fsq,
    )
    return cli


def main(args: list[str], defaults: Defaults) -> None:
    build(defaults)(args=args, prog_name="papershelf ml")
