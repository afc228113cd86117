"""The summarizer end to end on tiny budgets: text handling, the network, decoding,
checkpoints, resumable training and the `papershelf ml` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ml.checkpoints import checkpoint_present
from ml.summarizer import checkpoint, load
from ml.summarizer.data import Example, load_scitldr, read_records
from ml.summarizer.decode import _banned, beam_search, greedy
from ml.summarizer.evaluate import distinct_n, mauve_like, repetition, rouge
from ml.summarizer.inference import LoadedSummarizer
from ml.summarizer.model import ModelConfig
from ml.summarizer.text import detokenize, encode_sources, load_tokenizer, recase
from ml.summarizer.train import TrainConfig, train
from tests.ml.conftest import ml_cli

LONG = " ".join(f"Sentence {i} about graph neural networks and transformers." for i in range(60))


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer()


@pytest.fixture(scope="module")
def untrained() -> LoadedSummarizer:
    torch.manual_seed(0)
    return LoadedSummarizer.build(ModelConfig(layers=1), None, "untrained", device="cpu")


def tiny_config(out: Path, data: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        scitldr_dir=data / "scitldr",
        arxiv_files=sorted((data / "arxiv").glob("papers_*.jsonl.gz")),
        arxiv_pairs=8,
        limit=16,
        batch_size=8,
        layers=1,
        epochs=1,
        warmup_steps=2,
        checkpoint_every=1,
        device="cpu",
        cache_dir=out.parent / "cache",
    )
    base.update(kw)
    return TrainConfig(out=out, **base)  # type: ignore[arg-type]


# -- text ----------------------------------------------------------------------------------


def test_abstracts_are_not_cut_at_128_tokens(tokenizer) -> None:  # type: ignore[no-untyped-def]
    (ids,) = encode_sources(tokenizer, ["A title"], [LONG], "tldr")
    assert 128 < len(ids) <= 512
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id


def test_the_title_task_never_sees_the_title(tokenizer) -> None:  # type: ignore[no-untyped-def]
    (with_title,) = encode_sources(tokenizer, ["Quokka detection"], ["We count animals."], "tldr")
    (title_task,) = encode_sources(tokenizer, ["Quokka detection"], ["We count animals."], "title")
    assert "quo" in tokenizer.decode(with_title)
    assert "quo" not in tokenizer.decode(title_task)


def test_output_is_detokenized_and_recased_from_the_source(tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = tokenizer("a state-of-the-art bert for schrödinger ( 95.3 % )", add_special_tokens=False)[
        "input_ids"
    ]
    text = detokenize(tokenizer, ids)
    assert text == "a state-of-the-art bert for schrodinger (95.3%)"
    source = "We improve BERT. The Schrödinger equation is solved; we report 95.3%."
    assert recase(text, source) == "A state-of-the-art BERT for Schrödinger (95.3%)"


def test_a_capital_seen_only_at_a_sentence_start_is_not_copied() -> None:
    assert recase("we propose a model", "We propose. A model we built.") == "We propose a model"


# -- network and decoding ------------------------------------------------------------------


def test_output_is_a_distribution_and_copies_only_real_source_tokens(untrained) -> None:  # type: ignore[no-untyped-def]
    m = untrained.model
    src = torch.tensor([[101, 2000, 3000, 102, 0]])
    mask = src != 0
    mem = m.memory(torch.randn(1, 5, 384), src, mask)
    m.gate.bias.data.fill_(-30.0)  # p_gen ≈ 0: everything comes from the copy head
    try:
        q = m.probs(torch.tensor([[101, 2000]]), torch.tensor([0]), mem)
    finally:
        m.gate.bias.data.zero_()
    assert torch.allclose(q.sum(-1), torch.ones(1, 2), atol=1e-4)
    support = set((q[0, 0] > 1e-6).nonzero().flatten().tolist())
    assert support == {2000, 3000}  # never [CLS], [SEP] or padding


def test_cached_decoding_matches_recomputing_the_prefix(untrained) -> None:  # type: ignore[no-untyped-def]
    m = untrained.model
    torch.manual_seed(1)
    src = torch.randint(1000, 20000, (2, 9))
    mem = m.memory(torch.randn(2, 9, 384), src, torch.ones(2, 9, dtype=torch.bool))
    task = torch.zeros(2, dtype=torch.long)
    prefix = torch.tensor([[101, 2023, 2003, 1037], [101, 3000, 3001, 3002]])
    full = m.probs(prefix, task, mem)
    cache = m.new_cache()
    for t in range(prefix.shape[1]):
        step = m.probs(prefix[:, t : t + 1], task, mem, cache, start=t)
        assert torch.allclose(step[:, 0], full[:, t], atol=1e-5)


def test_greedy_and_one_beam_agree_and_are_deterministic(untrained) -> None:  # type: ignore[no-untyped-def]
    m = untrained.model
    torch.manual_seed(2)
    src = torch.randint(1000, 20000, (3, 12))
    mem = m.memory(torch.randn(3, 12, 384), src, torch.ones(3, 12, dtype=torch.bool))
    task = torch.zeros(3, dtype=torch.long)
    a = greedy(m, mem, task, max_len=10)
    assert a == greedy(m, mem, task, max_len=10)
    assert beam_search(m, mem, task, max_len=10, beams=1, length_penalty=0.0) == a
    wide = beam_search(m, mem, task, max_len=10, beams=3)
    assert len(wide) == 3 and all(len(h) <= 10 for h in wide)


def test_no_end_before_the_minimum_length() -> None:
    torch.manual_seed(0)
    eager = LoadedSummarizer.build(ModelConfig(layers=1), None, "eager", device="cpu")
    with torch.no_grad():  # a model that wants to stop at once
        eager.model.out_bias[eager.model.cfg.sep_id] = 50.0
    src = encode_sources(eager.tokenizer, ["Cats"], ["We study cats and dogs."], "tldr")
    for beams in (1, 3):
        assert [len(ids) for ids in eager.generate(src * 2, "tldr", beams)] == [4, 4]
        assert [len(ids) for ids in eager.generate(src * 2, "tldr", beams, 12)] == [12, 12]


def test_repeated_trigrams_are_blocked() -> None:
    assert _banned([5, 6, 7, 5, 6], 3) == [7]
    assert _banned([5, 6, 7], 3) == []


def test_summaries_are_deterministic_and_in_order(untrained) -> None:  # type: ignore[no-untyped-def]
    items = [("Graph networks", LONG), ("Short", "We study cats."), ("", "Only an abstract.")]
    first = untrained.summarize(items, batch_size=2)
    assert first == untrained.summarize(items, batch_size=2)
    assert len(first) == 3 and all(isinstance(s, str) for s in first)


# -- training, checkpoints, CLI ------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("summarizer") / "ckpt"
    result = train(tiny_config(out, shared_data, max_steps=3, objective="emo1"))
    assert result["steps"] == 3 and result["final_loss"] > 0
    return out


def test_training_writes_a_loadable_versioned_checkpoint(trained: Path) -> None:
    ckpt = checkpoint.read(trained)
    assert ckpt.version.startswith("tldr-emo1-")
    assert ckpt.meta["recipe"]["objective"] == "emo1"
    assert not (trained / "train_state.pt").exists()
    model = load(trained, device="cpu")
    assert model.version == ckpt.version
    assert len(model.summarize([("A title", "An abstract about transformers.")])) == 1


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path: Path, shared_data: Path) -> None:
    straight = tmp_path / "straight"
    train(tiny_config(straight, shared_data, max_steps=4))
    broken = tmp_path / "broken"
    cfg = tiny_config(broken, shared_data, max_steps=4)
    # Stop after two steps, as a killed run would leave it: only the training state on disk.
    from ml.progress import Quiet

    class Killed(Exception):
        pass

    calls = {"n": 0}

    class StopAfterTwo(Quiet):
        def advance(self, n: int = 1, **info: float) -> None:
            if info:  # a training step (encoding progress carries no loss)
                calls["n"] += n
                if calls["n"] > 2:
                    raise Killed

    with pytest.raises(Killed):
        train(cfg, StopAfterTwo())
    assert (broken / "train_state.pt").exists() and not checkpoint_present(broken)
    result = train(cfg)
    assert result["steps"] == 4
    a, b = checkpoint.read(straight), checkpoint.read(broken)
    assert a.version.split("-")[-1] == b.version.split("-")[-1]
    for name in a.state:
        assert torch.equal(a.state[name], b.state[name]), name


def test_a_state_from_other_settings_is_refused(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "ckpt"
    torch.save({"config": {"seed": 99}}, out.mkdir() or out / "train_state.pt")
    with pytest.raises(ValueError, match="other settings"):
        train(tiny_config(out, shared_data, max_steps=1))


def test_fine_tuning_starts_from_the_given_checkpoint(
    trained: Path, tmp_path: Path, shared_data: Path
) -> None:
    start = checkpoint.read(trained)
    # Zero learning rate: the fine-tuned weights must be exactly the starting point's.
    out = tmp_path / "tuned"
    result = train(
        tiny_config(out, shared_data, max_steps=1, objective="emo2", init_from=trained, lr=0.0)
    )
    tuned = checkpoint.read(out)
    assert result["init_from"] == start.version and tuned.meta["init_from"] == start.version
    assert tuned.version.startswith("tldr-emo2-")
    for name in start.state:
        assert torch.equal(start.state[name], tuned.state[name]), name
    # With a learning rate it moves a little from there; a fresh decoder (another seed's
    # initialisation) starts elsewhere.
    train(tiny_config(tmp_path / "moved", shared_data, max_steps=1, init_from=trained, seed=1))
    train(tiny_config(tmp_path / "fresh", shared_data, max_steps=1, seed=1))
    moved, fresh = checkpoint.read(tmp_path / "moved"), checkpoint.read(tmp_path / "fresh")

    def distance(a: dict[str, torch.Tensor]) -> float:
        return sum(float((a[k] - start.state[k]).abs().sum()) for k in start.state)

    assert 0 < distance(moved.state) < distance(fresh.state) / 10


def test_fine_tuning_refuses_to_overwrite_its_starting_point(
    trained: Path, shared_data: Path
) -> None:
    with pytest.raises(ValueError, match="another checkpoint"):
        train(tiny_config(trained, shared_data, max_steps=1, init_from=trained))


def test_missing_checkpoint_names_the_training_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-summarizer"):
        load(tmp_path)


def test_cli_summarize_writes_one_line_per_record(trained: Path, tmp_path: Path) -> None:
    cli = ml_cli()

    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": "2401.00001", "title": "Cats", "abstract": "We study cats."})
        + "\n"
        + json.dumps({"paper_id": "abc", "title": "Dogs", "source": ["We study dogs.", "More."]})
        + "\n"
    )
    dst = tmp_path / "out.jsonl"
    done = CliRunner().invoke(
        cli,
        [
            "summarize",
            "--input",
            str(src),
            "--output",
            str(dst),
            "--checkpoint",
            str(trained),
            "--device",
            "cpu",
        ],
    )
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["2401.00001", "abc"]
    assert all(isinstance(r["tldr"], str) for r in rows)


def test_cli_summarize_rejects_a_bad_line_by_number(trained: Path, tmp_path: Path) -> None:
    cli = ml_cli()

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "x", "abstract": "ok"}) + "\n{broken\n")
    done = CliRunner().invoke(
        cli,
        [
            "summarize",
            "--input",
            str(src),
            "--output",
            str(tmp_path / "o.jsonl"),
            "--checkpoint",
            str(trained),
        ],
    )
    assert done.exit_code == 1
    assert "in.jsonl:2" in done.output
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_eval_reports_every_metric(trained: Path, tmp_path: Path, shared_data: Path) -> None:
    cli = ml_cli()

    report = tmp_path / "eval.json"
    done = CliRunner().invoke(
        cli,
        [
            "eval-summarizer",
            "--split",
            "dev",
            "--limit",
            "12",
            "--checkpoint",
            str(trained),
            "--scitldr",
            str(shared_data / "scitldr"),
            "--device",
            "cpu",
            "--json",
            str(report),
        ],
    )
    assert done.exit_code == 0, done.output
    scores = json.loads(report.read_text())["scores"]
    assert {"title", "first sentence"} < set(scores)
    for s in scores.values():
        assert {
            "rouge1",
            "rouge2",
            "rougeL",
            "author_rouge1",
            "mauve",
            "distinct1",
            "distinct2",
            "repetition",
            "length",
        } <= set(s)
    # The title baseline's ROUGE on these 12 papers is real, not a placeholder.
    assert 10 < scores["title"]["rouge1"] < 80


def test_cli_trains_with_the_recipe_defaults_and_fine_tunes(
    trained: Path, tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.settings import get_settings

    monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    cli = ml_cli()
    common = ["--scitldr", str(shared_data / "scitldr"), "--limit", "8", "--max-steps", "1"]
    common += ["--arxiv-pairs", "0", "--device", "cpu"]
    # Options left out take the recipe's defaults (epochs, batch size, learning rate…).
    done = CliRunner().invoke(cli, ["train-summarizer", "--out", str(tmp_path / "a"), *common])
    assert done.exit_code == 0, done.output
    recipe = checkpoint.read(tmp_path / "a").meta["recipe"]
    assert recipe["epochs"] == 2 and recipe["batch_size"] == 32 and recipe["lr"] == 1.5e-3
    tuned = tmp_path / "b"
    args = ["train-summarizer", "--out", str(tuned), "--init-from", str(trained)]
    done = CliRunner().invoke(cli, [*args, "--lr", "3e-4", "--warmup-steps", "0", *common])
    assert done.exit_code == 0, done.output
    meta = checkpoint.read(tuned).meta
    assert meta["init_from"] == checkpoint.read(trained).version
    assert meta["recipe"]["lr"] == 3e-4 and meta["recipe"]["layers"] == 1  # the start's shape
    missing = CliRunner().invoke(
        cli, ["train-summarizer", "--out", str(tmp_path / "c"), "--init-from", str(tmp_path)]
    )
    assert missing.exit_code == 1 and "no summarizer checkpoint" in missing.output
    get_settings.cache_clear()


def test_cli_refuses_the_held_out_split(tmp_path: Path) -> None:
    cli = ml_cli()

    done = CliRunner().invoke(cli, ["eval-summarizer", "--split", "test"])
    assert done.exit_code == 1 and "held out" in done.output


# -- metrics -------------------------------------------------------------------------------


def test_rouge_multi_max_takes_the_reference_with_the_best_rouge1() -> None:
    r = rouge(
        ["graph networks learn fast"], [["unrelated words entirely", "graph networks learn fast"]]
    )
    assert r["rouge1"] == pytest.approx(100.0)
    assert r["author_rouge1"] == pytest.approx(0.0)


def test_diversity_and_repetition() -> None:
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert repetition(["we we we we"]) == pytest.approx(2 / 3)
    assert repetition(["no repeats here"]) == 0.0


def test_mauve_like_separates_same_from_different_distributions() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    far = rng.normal(size=(200, 8)) + 4.0
    assert mauve_like(a, b) > 0.9
    assert mauve_like(a, far) < 0.2


def test_records_and_scitldr_loaders(shared_data: Path, tmp_path: Path) -> None:
    dev = load_scitldr(shared_data / "scitldr" / "dev.jsonl")
    assert len(dev) == 619 and all(isinstance(e, Example) and e.targets for e in dev)
    assert dev[0].lead and dev[0].abstract.startswith(dev[0].lead[:20])
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"id": 1, "title": "T", "abstract": "A\n b"}) + "\n\n")
    assert list(read_records(f)) == [("1", "T", "A b")]
