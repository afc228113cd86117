"""bench/search.py's own parts: the known-item figures, the percentiles, the known items and
the query sets, and a miniature run through a real store."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import orjson
import pytest

from bench.ingest import read_lines, synthetic
from bench.related import FILE
from bench.search import (
    DB_FTS5,
    DB_OR,
    INDEX_KEYWORD,
    SCITLDR,
    QuerySets,
    collapse,
    filtered_queries,
    known_items,
    known_queries,
    make_store,
    or_words,
    p50_p99,
    rank_of,
    relevance,
    run_config,
    synthetic_sources,
)


def test_rank_counts_from_one_within_the_top_k() -> None:
    assert rank_of("b", ["a", "b", "c"]) == 2
    assert rank_of("a", ["a"]) == 1
    assert rank_of("z", ["a", "b"]) is None
    assert rank_of("k", [str(i) for i in range(10)] + ["k"]) is None  # 11th: outside the top 10
    assert rank_of("k", ["x", "k"], k=1) is None


def test_relevance_of_hand_made_rankings() -> None:
    rankings = [
        ["a", "x", "y"],  # rank 1
        ["x", "y", "b", "z"],  # rank 3
        ["x", "y"],  # not found
        [],  # nothing at all
    ]
    rel = relevance(rankings, ["a", "b", "c", "d"])
    assert rel.queries == 4
    assert rel.mrr == pytest.approx((1 + 1 / 3) / 4)
    assert rel.recall == pytest.approx(2 / 4)
    assert rel.empty == pytest.approx(1 / 4)


def test_a_right_answer_below_the_cut_scores_nothing() -> None:
    deep = [f"p{i}" for i in range(30)]
    rel = relevance([deep, deep], ["p9", "p10"])  # ranks 10 and 11
    assert rel.mrr == pytest.approx(0.1 / 2)
    assert rel.recall == 0.5
    assert rel.empty == 0.0


def test_relevance_of_nothing_and_of_mismatched_lists() -> None:
    assert relevance([], []).queries == 0
    with pytest.raises(ValueError):
        relevance([["a"]], ["a", "b"])


def test_percentiles() -> None:
    assert p50_p99([float(i) for i in range(1, 101)]) == (50.5, 99.0)
    assert p50_p99([float(i) for i in range(1, 201)]) == (100.5, 198.0)
    # Under 100 times the 99th percentile is the slowest.
    assert p50_p99([3.0, 1.0, 2.0]) == (2.0, 3.0)
    assert p50_p99([]) == (0.0, 0.0)


def test_or_words_joins_each_index_token_once() -> None:
    assert or_words("State-of-the-art models, the GPT-4o models") == (
        "state OR of OR the OR art OR models OR gpt OR 4o"
    )
    assert or_words("") == ""


def test_known_items_are_older_than_every_real_paper_under_ids_of_their_own(
    shared_data: Path,
) -> None:
    items = known_items(shared_data / SCITLDR)
    assert len(items) == 619
    assert sum(len(it.tldrs) for it in items) == 1453
    assert len({it.arxiv_id for it in items}) == len(items)
    assert all(date(2018, 1, 1) <= it.day <= date(2019, 12, 31) for it in items)
    # yymm of the day, then a number no real paper of that month reached.
    assert all(it.arxiv_id == f"{it.day:%y%m}.{90000 + i:05d}" for i, it in enumerate(items))
    first = items[0]
    assert first.title == "Adaptive Loss Scaling for Mixed Precision Training"
    assert first.abstract.startswith("Mixed precision training (MPT) is becoming")
    pairs = known_queries(items)
    assert len(pairs) == 1453 and pairs[0] == (first.tldrs[0], first.arxiv_id)
    assert len(known_queries(items, 100)) == 100


def test_synthetic_copies_count_once() -> None:
    source_of = {"s1": "a", "s2": "a", "s3": "b"}.get
    ranking = ["s1", "a", "s2", "k", "s3", "b", "x"]
    assert collapse(ranking, lambda i: source_of(i) or i) == ["s1", "k", "s3", "x"]


def test_synthetic_papers_name_their_source(shared_data: Path) -> None:
    lines = read_lines(shared_data / FILE, 7)
    ids = [orjson.loads(line)["id"] for line in lines]
    source_of = synthetic_sources(ids)
    made = [r for batch in synthetic(lines, 20) for r in batch]
    assert [source_of(r.arxiv_id) for r in made] == [ids[i % 7] for i in range(20)]
    # Each is a real paper's words, shuffled.
    assert sorted(made[8].title.split()) == sorted(orjson.loads(lines[1])["title"].split())
    assert source_of(ids[3]) == ids[3]
    assert source_of("1801.90000") == "1801.90000"


def test_filtered_queries_take_turns() -> None:
    qs = filtered_queries(["graph", "learning", "model"], 6)
    assert [q.split()[0] for q in qs] == ["cat:cs.LG", "cat:cs.CV", "date:2025-09..2025-12"] * 2
    assert all(1 <= len(q.split()) - 1 <= 2 for q in qs)


def test_a_miniature_run_finds_the_known_items(shared_data: Path, tmp_path: Path) -> None:
    """Real papers, known items and synthetic ones in a real store, then the database engine
    (words required; OR-ed) and the index engine on the known items' TL;DRs."""
    lines = read_lines(shared_data / FILE, 40)
    source = tmp_path / "papers.jsonl.gz"
    with gzip.open(source, "wb") as fh:
        fh.writelines(lines)
    items = known_items(shared_data / SCITLDR)[:15]
    s = make_store(
        f"sqlite:///{tmp_path / 'store' / 'papers.db'}",
        tmp_path / "store",
        source,
        lines,
        items,
        synthetic_n=60,
    )
    assert s.papers == 40 + 15 + 60
    assert s.builds["fulltext_s"] > 0
    # The index lives in the store's own directory.
    assert (tmp_path / "store" / "search").is_dir()
    qs = QuerySets(
        known=known_queries(items),
        latency={"titles": ["model"], "sentences": [items[0].tldrs[0]], "filtered": []},
    )
    by_config = {}
    for cfg in (DB_FTS5, DB_OR, INDEX_KEYWORD):
        results = run_config(s, cfg, qs)
        assert [r.queries for r in results] == ["known items", "titles", "sentences", "filtered"]
        by_config[cfg.name] = results[0]
    s.engine.dispose()
    for r in by_config.values():
        assert r.relevance is not None and r.n == len(qs.known)
    # OR-ed words find nearly every paper among so few; requiring every word does not.
    assert by_config[DB_OR.name].relevance.recall >= 0.9  # type: ignore[union-attr]
    assert by_config[DB_FTS5.name].relevance.empty > 0.5  # type: ignore[union-attr]
    assert by_config[INDEX_KEYWORD.name].relevance.recall >= 0.9  # type: ignore[union-attr]
    assert by_config[INDEX_KEYWORD.name].modes == {"index keyword": len(qs.known)}
    # The store has synthetic papers: the figures with their copies counted once too.
    assert all(r.distinct is not None for r in by_config.values())
