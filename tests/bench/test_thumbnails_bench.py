"""bench/thumbnails.py on tiny models: both kinds are made through the pool's own path for
the same papers, and the table's figures add up (tokens are 512 bytes, stored = PNG +
tokens, the ratio is PDF over the placeholder baseline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the ML extra is not installed")


def test_quick_run_reports_both_kinds(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.thumbnails import main

    out = tmp_path / "thumbs.json"
    assert main(["--quick", "--papers", "4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    base, pdf = result["placeholder"], result["pdf"]
    assert base["papers"] == pdf["papers"] == 4
    assert base["model"].startswith("diffusion-plots-") and pdf["model"].startswith("fsq-")
    assert (base["token_bytes"], pdf["token_bytes"]) == (0, 512)
    assert pdf["stored_bytes_per_paper"] == pdf["png_bytes_mean"] + 512
    assert base["seconds_per_paper"] > 0 and pdf["seconds_per_paper"] > 0
    assert result["ratio"]["seconds"] == pytest.approx(
        pdf["seconds_per_paper"] / base["seconds_per_paper"]
    )
    assert result["arxiv_min_interval"] == 3
    assert 500 < result["reference_png_bytes"] < 12_288  # real plots compress well
    printed = capsys.readouterr().out
    assert "placeholder (baseline)" in printed and "ratio PDF / placeholder" in printed


def test_synthetic_first_page_renders(shared_data: Path) -> None:
    from bench.thumbnails import PAGE, figures, synthetic_pdf
    from ml.pictures import render_first_page

    (fig,) = figures(shared_data, 1)
    page = render_first_page(synthetic_pdf(fig, 0))
    assert page.size == (PAGE[0] // 2, PAGE[1] // 2)  # rendered at half scale
    # Not a blank page: the figure and the text lines are drawn.
    assert len(page.getcolors(1 << 20) or []) > 10
