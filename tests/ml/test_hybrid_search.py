"""Hybrid search (app.hybrid) with real embeddings: the ML pool's embedder stores the papers'
vectors, and the web embeds queries with the ONNX model the pool exports. A query in other
words than a paper's is found by meaning; a paper found both ways ranks first; the query's
filters, exclusions and required terms hold for what meaning finds too."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from app import hybrid
from app.artifacts import embeddings
from app.db.engine import make_engine
from app.db.store import upsert_papers
from app.ingest.records import PaperRecord
from app.search import SearchPage, query_vector
from app.search.query_vector import QueryEncoder
from app.settings import Settings
from app.vectors import index_for as vectors_for
from ml.embeddings import VERSION, load_embedder, onnx_fused

#: (title, abstract, category, day) by paper number.
CORPUS: dict[int, tuple[str, str, str, date]] = {
    1: (
        "Protein structure prediction with deep learning",
        "We predict the three-dimensional shape of proteins from their sequences by training "
        "a deep model on known structures.",
        "q-bio.BM",
        date(2024, 6, 1),
    ),
    2: (
        "Denoising diffusion models for image synthesis",
        "A generative model that learns to reverse a gradual noising process produces high "
        "quality pictures.",
        "cs.CV",
        date(2025, 2, 1),
    ),
    3: (
        "Diffusion of innovations in social networks",
        "How new ideas spread between people: models of adoption fitted to survey data.",
        "cs.SI",
        date(2025, 2, 2),
    ),
    4: (
        "Adversarial networks that paint photorealistic faces",
        "A two-player game between a painter network and a critic yields realistic portraits.",
        "cs.CV",
        date(2025, 2, 3),
    ),
    5: (
        "Graph neural networks for molecules",
        "Message passing over atoms and bonds predicts chemical properties.",
        "cs.LG",
        date(2025, 2, 4),
    ),
    6: (
        "Speech recognition with recurrent networks",
        "Long short-term memory layers transcribe spoken words into text.",
        "eess.AS",
        date(2025, 2, 5),
    ),
    7: (
        "Reinforcement learning for robotic grasping",
        "A robot arm learns to pick up unfamiliar objects by trial and error.",
        "cs.RO",
        date(2025, 2, 6),
    ),
    8: (
        "Convex optimization for power grids",
        "Scheduling generators to meet demand at least cost.",
        "math.OC",
        date(2025, 2, 7),
    ),
    9: (
        "Dark matter halos in galaxy simulations",
        "N-body simulations trace how dark matter clumps around galaxies.",
        "astro-ph.CO",
        date(2025, 2, 8),
    ),
    10: (
        "Quantum error correction with surface codes",
        "Logical qubits are protected from noise by measuring stabilizers on a lattice.",
        "quant-ph",
        date(2025, 2, 9),
    ),
    11: (
        "Machine translation with attention",
        "An encoder-decoder model aligns words between languages.",
        "cs.CL",
        date(2025, 2, 10),
    ),
    12: (
        "Sentiment analysis of product reviews",
        "Classifying customer opinions as positive or negative.",
        "cs.CL",
        date(2025, 2, 11),
    ),
    13: (
        "Climate models of ocean circulation",
        "Simulating currents and heat transport in the Atlantic.",
        "physics.ao-ph",
        date(2025, 2, 12),
    ),
    14: (
        "Black hole mergers observed in gravitational waves",
        "Interferometers detect ripples in spacetime from colliding black holes.",
        "gr-qc",
        date(2025, 2, 13),
    ),
    15: (
        "Gene expression in single cells",
        "Sequencing RNA from individual cells reveals cell types.",
        "q-bio.GN",
        date(2025, 2, 14),
    ),
    16: (
        "Predicting protein interactions",
        "Pairs of proteins that bind are identified from their amino acid sequences.",
        "q-bio.BM",
        date(2025, 2, 15),
    ),
    17: (
        "Drug discovery with generative chemistry",
        "Designing new molecules with desired properties.",
        "q-bio.BM",
        date(2025, 2, 16),
    ),
    18: (
        "Traffic forecasting",
        "Predicting congestion on road networks from sensor data.",
        "cs.LG",
        date(2025, 2, 17),
    ),
    19: (
        "Compiler optimizations for loops",
        "Transforming nested loops to use caches well.",
        "cs.PL",
        date(2025, 2, 18),
    ),
    20: (
        "Cryptographic hash functions",
        "Collision resistance of compression functions.",
        "cs.CR",
        date(2025, 2, 19),
    ),
    21: (
        "Sorting algorithms on GPUs",
        "Parallel radix sort for many-core processors.",
        "cs.DS",
        date(2025, 2, 20),
    ),
    22: (
        "Epidemic spreading on contact networks",
        "Modelling how infections travel through a population.",
        "physics.soc-ph",
        date(2025, 2, 21),
    ),
    23: (
        "Recommender systems with matrix factorization",
        "Users and items share a low-dimensional latent space.",
        "cs.IR",
        date(2025, 2, 22),
    ),
    24: (
        "Perception for autonomous driving",
        "Detecting pedestrians and vehicles in camera images.",
        "cs.CV",
        date(2025, 2, 23),
    ),
    25: (
        "Superconductivity in layered materials",
        "Electrons pair up below a critical temperature.",
        "cond-mat.supr-con",
        date(2025, 2, 24),
    ),
    26: (
        "Gaps between primes",
        "Bounds on the distance between consecutive prime numbers.",
        "math.NT",
        date(2025, 2, 25),
    ),
    27: (
        "Spiking neural networks",
        "Neurons that communicate by discrete spikes, trained with surrogate gradients.",
        "cs.NE",
        date(2025, 2, 26),
    ),
    28: (
        "Weather forecasting with machine learning",
        "Global medium-range forecasts from reanalysis data.",
        "physics.ao-ph",
        date(2025, 2, 27),
    ),
    29: (
        "Learned image compression",
        "An end-to-end optimised codec for photographs.",
        "eess.IV",
        date(2025, 2, 28),
    ),
    30: (
        "Text-to-image generation",
        "Pictures synthesised from captions by a denoising network.",
        "cs.CV",
        date(2025, 3, 1),
    ),
    # Stored later, by the test that shows the cache moves on.
    31: (
        "Folding proteins with neural networks",
        "Amino acid chains are folded into their native shape by a learned model.",
        "q-bio.BM",
        date(2025, 3, 2),
    ),
}
LATER = 31
#: None of the protein paper's (1) words, its meaning.
FOLDING = "folding amino acid chains using neural networks"


def arxiv_id(n: int) -> str:
    return f"2503.{n:05d}"


def number(arxiv: str) -> int:
    return int(arxiv.split(".")[1])


def record(n: int) -> PaperRecord:
    title, abstract, category, day = CORPUS[n]
    return PaperRecord(
        arxiv_id=arxiv_id(n),
        title=title,
        abstract=abstract,
        authors=["Rosalind Franklin"],
        primary_category=category,
        categories=[category],
        version=1,
        first_submitted_at=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache holding the fused ONNX model, as the ML pool leaves it (built once)."""
    cache = tmp_path_factory.mktemp("embedder")
    onnx_fused.cached_model(cache)
    return cache


@pytest.fixture(scope="module")
def vectors(model_dir: Path) -> dict[int, np.ndarray]:
    """Every paper's embedding, by the pool's CPU embedder."""
    embedder = load_embedder("cpu", backend="onnx", cache_dir=model_dir, threads=1)
    rows = embedder.embed([(t, a) for t, a, _, _ in CORPUS.values()])
    return dict(zip(CORPUS, rows, strict=True))


def write(engine: Engine, vectors: dict[int, np.ndarray], numbers: list[int]) -> None:
    """Store papers and their embeddings, as the fetch and the ML pool do."""
    with engine.begin() as conn:
        upsert_papers(conn, [record(n) for n in numbers])
    with engine.begin() as conn:
        embeddings.upsert(
            conn, [embeddings.Written(arxiv_id(n), 1, VERSION, vectors[n]) for n in numbers]
        )


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    hybrid.CACHE.clear()
    query_vector.reset()
    yield
    hybrid.CACHE.clear()
    query_vector.reset()


@pytest.fixture
def site(
    site_settings: Callable[..., Settings], model_dir: Path, vectors: dict[int, np.ndarray]
) -> Iterator[tuple[Settings, Engine]]:
    """A site whose model cache holds the query model, with the corpus (less the later
    paper) stored and embedded."""
    settings = site_settings()
    settings.embedder_cache_dir.mkdir(parents=True)
    for model in model_dir.glob("*.onnx"):
        os.link(model, settings.embedder_cache_dir / model.name)
    engine = make_engine(settings.database_url_resolved)
    write(engine, vectors, [n for n in CORPUS if n != LATER])
    yield settings, engine
    engine.dispose()


def run(site: tuple[Settings, Engine], text: str, **kw: object) -> SearchPage:
    settings, engine = site
    with engine.connect() as conn:
        return hybrid.search(conn, text, settings=settings, **kw)  # type: ignore[arg-type]


def found(site: tuple[Settings, Engine], text: str, **kw: object) -> list[int]:
    return [number(h.arxiv_id) for h in run(site, text, **kw).hits]


# --- meaning as well as words --------------------------------------------------------------


def test_a_query_in_other_words_is_found_by_meaning(site: tuple[Settings, Engine]) -> None:
    keyword = run(site, FOLDING, mode="keyword")
    assert keyword.mode == "keyword" and 1 not in [number(h.arxiv_id) for h in keyword.hits]
    semantic = run(site, FOLDING, mode="semantic")
    assert semantic.mode == "semantic" and semantic.notices == []
    assert number(semantic.hits[0].arxiv_id) == 1
    scores = [h.score for h in semantic.hits]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    both = run(site, FOLDING)  # hybrid, the default once it can run
    assert both.mode == "hybrid" and both.engine == "index" and both.notices == []
    assert 1 in [number(h.arxiv_id) for h in both.hits]


def test_hybrid_ranks_a_paper_found_both_ways_first(site: tuple[Settings, Engine]) -> None:
    # 16 (proteins from their "amino acid" sequences) is found by its words and by its
    # meaning; 1, the nearest in meaning, only by its meaning.
    keyword = found(site, FOLDING, mode="keyword")
    semantic = found(site, FOLDING, mode="semantic")
    assert keyword[0] == 16 and semantic[:2] == [1, 16]
    fused = found(site, FOLDING, mode="hybrid")
    assert fused[0] == 16
    assert fused.index(1) > fused.index(16)


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_filters_hold_for_what_meaning_finds(site: tuple[Settings, Engine], mode: str) -> None:
    # The protein paper (1) is the nearest in meaning, but it is in q-bio.BM, from 2024.
    for page in (
        run(site, f"{FOLDING} cat:cs.LG", mode=mode),
        run(site, FOLDING, mode=mode, categories=["cs.LG"]),
    ):
        assert page.mode == mode and page.hits
        assert {h.primary_category for h in page.hits} == {"cs.LG"}
    for page in (
        run(site, f"{FOLDING} date:2025", mode=mode),
        run(site, FOLDING, mode=mode, date_from=date(2025, 1, 1)),
    ):
        assert page.hits and min(h.sort_date for h in page.hits) >= date(2025, 1, 1)
    # An excluded word excludes what meaning finds, too.
    excluded = found(site, f"{FOLDING} -protein", mode=mode)
    assert excluded and not {1, 16} & set(excluded)
    # A required field term holds for every hit.
    titled = run(site, f"{FOLDING} ti:networks", mode=mode)
    assert titled.hits and all("networks" in h.title.lower() for h in titled.hits)


def test_date_order_is_a_keyword_listing(site: tuple[Settings, Engine]) -> None:
    page = run(site, FOLDING, mode="hybrid", sort="date")
    assert page.mode == "keyword"
    assert page.notices == ["keyword results: results are sorted by date"]
    days = [h.sort_date for h in page.hits]
    assert days == sorted(days, reverse=True)
    assert 1 not in [number(h.arxiv_id) for h in page.hits]


def test_the_query_is_embedded_while_the_keyword_search_runs(
    site: tuple[Settings, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The encoder waits until the keyword search has begun: run one after the other, the
    # encoder would wait in vain and the search would fail.
    keyword_started = threading.Event()
    real_encode, real_keyword = QueryEncoder.encode, hybrid.search_papers

    def encode(self: QueryEncoder, text: str) -> np.ndarray:
        assert keyword_started.wait(10), "the keyword search did not start meanwhile"
        return real_encode(self, text)

    def keyword(*args: object, **kwargs: object) -> SearchPage:
        keyword_started.set()
        return real_keyword(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(QueryEncoder, "encode", encode)
    monkeypatch.setattr(hybrid, "search_papers", keyword)
    page = run(site, FOLDING)
    assert page.mode == "hybrid" and page.notices == []
    assert found(site, FOLDING, mode="keyword") != [number(h.arxiv_id) for h in page.hits]


def test_pages_come_from_the_cache_until_a_paper_is_stored(
    site: tuple[Settings, Engine], vectors: dict[int, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, engine = site
    encoded: list[str] = []
    real = QueryEncoder.encode

    def counted(self: QueryEncoder, text: str) -> np.ndarray:
        encoded.append(text)
        return real(self, text)

    monkeypatch.setattr(QueryEncoder, "encode", counted)
    first = run(site, FOLDING)
    assert run(site, FOLDING) == first
    assert len(encoded) == 1  # the second page came from the cache
    second_page = run(site, FOLDING, limit=5, offset=5)
    assert second_page.hits == first.hits[5:10] and len(encoded) == 1

    vectors_for(settings).check_every = 0  # read new embeddings at once
    write(engine, vectors, [LATER])
    after = run(site, FOLDING)
    assert number(after.hits[0].arxiv_id) == LATER
    assert after.total == first.total + 1
    assert len(encoded) == 2
