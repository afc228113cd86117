"""Summarizer speed: TL;DRs per second for 256 real abstracts, against the encoder alone.

    python -m bench.summarizer_speed                      # the configured checkpoint
    python -m bench.summarizer_speed --checkpoint DIR
    python -m bench.summarizer_speed --quick              # 32 abstracts; untrained weights
    python -m bench.summarizer_speed --json out.json

The ceiling is the encoder-only forward pass over the same abstracts with the same batches
in the same run: every TL;DR needs it, so "ratio" is the share of the best possible rate
the whole pipeline (tokenize, encode, decode, detokenize, re-case) keeps. Rows run on the
device `auto` picks (CPU here) with the precision the product uses, plus the same greedy
pass in fp32 for comparison where the CPU has native bf16.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.ingest import find_data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="32 abstracts, untrained weights")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--beams", type=int, default=4, help="also time beam search (0: skip)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from app.settings import get_settings
    from ml import device as ml_device
    from ml.summarizer.data import load_scitldr, pad
    from ml.summarizer.inference import LoadedSummarizer
    from ml.summarizer.model import ModelConfig
    from ml.summarizer.text import encode_sources

    n = args.n or (32 if args.quick else 256)
    dev = load_scitldr(find_data() / "scitldr" / "dev.jsonl")[:n]
    items = [(e.title, e.abstract) for e in dev]
    if args.quick:
        torch.manual_seed(0)
        model = LoadedSummarizer.build(ModelConfig(), None, "untrained")
    else:
        path = args.checkpoint or get_settings().summarizer_path_resolved
        model = LoadedSummarizer.from_checkpoint(path)
    sources = encode_sources(model.tokenizer, [t for t, _ in items], [a for _, a in items], "tldr")  # type: ignore[arg-type]
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]

    def encoder_only() -> None:
        with torch.inference_mode(), ml_device.autocast(model.device):
            for idx in batches:
                ids, mask = pad([sources[i] for i in idx])
                model.encoder(input_ids=ids.to(model.device), attention_mask=mask.to(model.device))

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    model.summarize(items[:8])  # warm-up: first-call allocations, kernels
    rows = []
    enc_s = timed(encoder_only)
    rows.append(("encoder only (ceiling)", enc_s))
    outputs: list[str] = []
    rows.append(("greedy TL;DRs", timed(lambda: outputs.extend(model.summarize(items)))))
    if args.beams > 1:
        rows.append(
            (f"beam {args.beams} TL;DRs", timed(lambda: model.summarize(items, beams=args.beams)))
        )
    if ml_device.bf16_supported(model.device):
        native = ml_device.bf16_supported
        ml_device.bf16_supported = lambda _d: False  # type: ignore[assignment]
        try:
            rows.append(("greedy TL;DRs, fp32 encoder", timed(lambda: model.summarize(items))))
        finally:
            ml_device.bf16_supported = native  # type: ignore[assignment]

    print(
        f"{n} SciTLDR dev abstracts, batches of {args.batch_size}, device {model.device}, "
        f"threads {torch.get_num_threads()}, model {model.version}"
    )
    print(f"{'pass':<30}{'seconds':>9}{'per s':>9}{'vs encoder':>12}")
    report = {
        "n": n,
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "version": model.version,
        "rows": [],
    }
    for name, secs in rows:
        ratio = enc_s / secs
        print(f"{name:<30}{secs:>9.2f}{n / secs:>9.1f}{ratio:>11.2f}x")
        report["rows"].append(
            {
                "pass": name,
                "seconds": round(secs, 3),  # type: ignore[attr-defined]
                "per_second": round(n / secs, 2),
                "vs_encoder": round(ratio, 3),
            }
        )
    words = [len(o.split()) for o in outputs]
    print(f"mean TL;DR length {sum(words) / max(1, len(words)):.1f} words")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
