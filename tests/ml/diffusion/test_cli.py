"""`papershelf ml train-diffusion / train-amed / eval-diffusion` end to end on a few steps of
real Fashion-MNIST, and the errors for missing inputs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.ml.conftest import ml_cli

cli = ml_cli()


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_train_amed_and_evaluate_on_fashion(shared_data: Path, tmp_path: Path) -> None:
    images, model = shared_data / "images", tmp_path / "model"
    trained = _run(
        "train-diffusion", "--dataset", "fashion", "--steps", "12", "--batch", "8",
        "--size", "tiny", "--limit", "300", "--images", str(images), "--out", str(model),
        "--json", str(tmp_path / "train.json"),
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    info = json.loads((tmp_path / "train.json").read_text())
    assert info["steps"] == 12 and info["version"].startswith("diffusion-fashion-")
    assert (model / "model.safetensors").is_file() and not (model / "train_state.pt").exists()

    amed = _run(
        "train-amed", "--checkpoint", str(model), "--solver", "amed_plugin", "--nfe", "3",
        "--samples", "4", "--batch", "4", "--json", str(tmp_path / "amed.json"),
    )  # fmt: skip
    assert amed.exit_code == 0, amed.output
    assert (model / "amed-amed_plugin-nfe3.safetensors").is_file()
    assert json.loads((tmp_path / "amed.json").read_text())["version"] == info["version"]

    evaluated = _run(
        "eval-diffusion", "--checkpoint", str(model), "--images", str(images), "--nfe", "3",
        "--solvers", "ddim,ipndm,amed,amed_plugin", "--samples", "12", "--teacher-steps", "4",
        "--classifier-steps", "5", "--json", str(tmp_path / "eval.json"),
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["version"] == info["version"]
    assert {(r["solver"], r["nfe"]) for r in result["rows"]} == {
        ("ddim", 3), ("ipndm", 3), ("amed_plugin", 3),
    }  # fmt: skip
    assert [(m["solver"], m["nfe"]) for m in result["missing"]] == [("amed", 3)]
    for r in result["rows"]:
        assert r["fd"] >= 0 and r["rmse"] >= 0 and r["seconds_per_image"] > 0
    assert 0 < result["pca"]["top2_variance_fraction"] <= 1
    assert "RMSE→teacher" in evaluated.output and "ddim" in evaluated.output


def test_missing_checkpoint_and_bad_options(tmp_path: Path) -> None:
    for command in ("eval-diffusion", "train-amed"):
        result = _run(command, "--checkpoint", str(tmp_path / "nothing"))
        assert result.exit_code == 1
        assert "no diffusion checkpoint" in result.output and "Traceback" not in result.output
    result = _run("train-diffusion", "--dataset", "cifar", "--out", str(tmp_path / "m"))
    assert result.exit_code == 1 and "fashion or plots" in result.output
    result = _run("eval-diffusion", "--nfe", "three", "--checkpoint", str(tmp_path))
    assert result.exit_code == 1 and "integers" in result.output
