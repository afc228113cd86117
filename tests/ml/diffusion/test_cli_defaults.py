"""Where `papershelf ml train-diffusion` writes when `--out` is left out: the plots model
(the default data set) into the thumbnails' folder, a Fashion-MNIST model into /lab's, and
what each is for; a Fashion model put in the thumbnails' folder by hand gets a warning."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ml.cli import Defaults, build

TINY = ("--steps", "2", "--batch", "4", "--size", "tiny", "--limit", "16")


def test_each_data_set_goes_to_its_own_folder(shared_data: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    cli = build(
        Defaults(
            data_dir=tmp_path,
            summarizer=models / "summarizer",
            fsq=models / "fsq",
            diffusion=models / "diffusion",
        )
    )

    def run(*args: str) -> str:
        images = str(shared_data / "images")
        result = CliRunner().invoke(cli, [*args, *TINY, "--images", images])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    said = run("train-diffusion", "--dataset", "fashion")
    lab = models / "diffusion-fashion"
    assert json.loads((lab / "config.json").read_text())["meta"]["dataset"] == "fashion"
    assert not (models / "diffusion").exists()
    assert "never draws paper thumbnails" in said

    # The plots' model learns the configured tokenizer's codes: without one, a clear refusal.
    images = str(shared_data / "images")
    refused = CliRunner().invoke(cli, ["train-diffusion", *TINY, "--images", images])
    assert refused.exit_code == 1 and "train-fsq" in refused.output
    assert not (models / "diffusion").exists()
    trained = CliRunner().invoke(
        cli, ["train-fsq", "--steps", "2", "--batch", "4", "--images", images]
    )
    assert trained.exit_code == 0, trained.output

    said = run("train-diffusion")  # the plots, for the thumbnails
    config = json.loads((models / "diffusion" / "config.json").read_text())
    assert config["meta"]["dataset"] == "plots" and config["version"].startswith("diffusion-plots-")
    assert config["meta"]["latent"]["space"] == "fsq"
    assert (models / "diffusion" / "tokenizer" / "model.safetensors").is_file()
    assert "placeholder thumbnails come from this model" in said and "train-amed" in said

    said = run("train-diffusion", "--dataset", "fashion", "--out", str(models / "diffusion"))
    assert "warning" in said and "train-diffusion --dataset plots" in said


def test_lab_folder_from_the_settings(shared_data: Path, tmp_path: Path) -> None:
    """PAPERSHELF_LAB_DIFFUSION_PATH is where a Fashion model goes by default."""
    lab = tmp_path / "elsewhere" / "lab-model"
    cli = build(
        Defaults(
            data_dir=tmp_path,
            summarizer=tmp_path / "s",
            fsq=tmp_path / "f",
            diffusion=tmp_path / "d",
            lab_diffusion=lab,
        )
    )
    images = str(shared_data / "images")
    result = CliRunner().invoke(
        cli, ["train-diffusion", "--dataset", "fashion", *TINY, "--images", images]
    )
    assert result.exit_code == 0, result.output
    assert (lab / "config.json").is_file() and not (tmp_path / "d").exists()
