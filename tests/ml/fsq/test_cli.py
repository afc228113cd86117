"""`papershelf ml train-fsq` / `eval-fsq` through typer's runner: a few steps on the real plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml.fsq.cli import parse_levels
from tests.ml.conftest import ml_cli

runner = CliRunner()
cli = ml_cli()


def test_parse_levels() -> None:
    assert parse_levels("8,5,5,5") == [8, 5, 5, 5]
    assert parse_levels("8x6x5") == [8, 6, 5]
    assert parse_levels(None) is None
    for bad in ("8,a", "1,5", ""):
        with pytest.raises(ValueError, match="--levels"):
            parse_levels(bad)


def test_train_then_eval(shared_data: Path, tmp_path: Path) -> None:
    images = shared_data / "images"
    out, figures = tmp_path / "fsq", tmp_path / "train.json"
    args = ["train-fsq", "--images", str(images), "--levels", "4,3", "--steps", "3"]
    result = runner.invoke(
        cli, [*args, "--batch", "4", "--seed", "1", "--out", str(out), "--json", str(figures)]
    )
    assert result.exit_code == 0, result.output
    assert "fsq-4x3-" in result.output
    trained = json.loads(figures.read_text())
    assert trained["steps"] == 3 and trained["held_out"]["codebook_size"] == 12
    assert 0 < trained["held_out"]["usage"] <= 100

    report = tmp_path / "eval.json"
    result = runner.invoke(
        cli,
        ["eval-fsq", "--checkpoint", str(out), "--images", str(images), "--json", str(report)],
    )
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output
    data = json.loads(report.read_text())
    assert data["version"] == trained["version"]
    assert data["held_out"]["held_out"] == 45
    assert data["held_out"]["mse"] == pytest.approx(trained["held_out"]["mse"])
    assert data["all_plots"]["tokens"] == 495 * 256


def test_errors_exit_1_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["eval-fsq", "--checkpoint", str(tmp_path)])
    assert result.exit_code == 1
    assert "no FSQ tokenizer checkpoint" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["train-fsq", "--images", str(tmp_path / "none")])
    assert result.exit_code == 1 and "not found" in result.output
    result = runner.invoke(cli, ["train-fsq", "--images", str(tmp_path), "--levels", "8,q"])
    assert result.exit_code == 1 and "--levels" in result.output
    # An images folder without the plots file.
    result = runner.invoke(cli, ["train-fsq", "--images", str(tmp_path), "--steps", "1"])
    assert result.exit_code == 1 and "plots_rgb64.npz" in result.output
    result = runner.invoke(cli, ["train-fsq", "--images", str(tmp_path), "--codebook-size", "1000"])
    assert result.exit_code == 1 and "recommended" in result.output
