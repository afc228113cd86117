"""Which data set a diffusion checkpoint learned: recorded in its metadata by
`train-diffusion`, read from its version for checkpoints without the field, unknown
otherwise (an unknown model never draws paper thumbnails)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ml.diffusion.checkpoint import dataset_from, dataset_of


def fake_checkpoint(path: Path, version: Any, meta: Any) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "config.json").write_text(
        json.dumps({"format": 1, "version": version, "model": {}, "meta": meta})
    )
    return path


@pytest.mark.parametrize(
    ("version", "meta", "expected"),
    [
        ("diffusion-plots-0123456789", {"dataset": "plots"}, "plots"),
        ("diffusion-fashion-0123456789", {"dataset": "fashion"}, "fashion"),
        # No field (an older checkpoint): its version names the data set.
        ("diffusion-plots-0123456789", {}, "plots"),
        ("diffusion-fashion-abcdef0123", {"steps": 10}, "fashion"),
        # The recorded field wins over the version.
        ("diffusion-plots-0123456789", {"dataset": "fashion"}, "fashion"),
        # Nothing known: unknown, never guessed from the image shape.
        ("diffusion-custom-0123456789", {}, None),
        ("something-else", {}, None),
        (None, {"dataset": "cifar"}, None),
        (None, {"dataset": 3}, None),
    ],
)
def test_dataset_from(
    version: str | None, meta: dict[str, Any], expected: str | None, tmp_path: Path
) -> None:
    assert dataset_from(meta, version) == expected
    # The web's torch-free check (whether thumbnail jobs have a taker) reads it the same way.
    from app.jobs.pictures import draws_placeholders

    path = fake_checkpoint(tmp_path / "c", version, meta)
    assert draws_placeholders(path) is (expected == "plots")


def test_dataset_of_a_folder(tmp_path: Path) -> None:
    assert dataset_of(tmp_path / "absent") is None
    plots = fake_checkpoint(tmp_path / "p", "diffusion-plots-0123456789", {"dataset": "plots"})
    assert dataset_of(plots) == "plots"
    old = fake_checkpoint(tmp_path / "old", "diffusion-fashion-0123456789", None)
    assert dataset_of(old) == "fashion"
    broken = fake_checkpoint(tmp_path / "broken", "diffusion-plots-0123456789", {})
    (broken / "config.json").write_text("{not json")
    assert dataset_of(broken) is None
