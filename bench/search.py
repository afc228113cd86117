"""Search benchmark: known-item relevance with real sentences, and latency, for each search
engine and mode, with the database engine as the baseline in the same run.

    python -m bench.search                   # 50k real papers (+ PostgreSQL), then 2.5M
    python -m bench.search --sizes real      # the 50k store only
    python -m bench.search --quick           # smoke run: 5k real papers, 20k synthetic
    python -m bench.search --skip-postgres --no-semantic --json out.json

Stores, each in a temporary directory with its own data dir:
  real     the real cs listing file (bench.related.FILE) and the known items
  N        the same plus N synthetic papers (bench.ingest.synthetic); SQLite only
Known items: the SciTLDR dev papers (title, and " ".join(source) as the abstract), stored as
cs.LG papers announced in 2018-2019 under ids no real or synthetic paper has. Each of a
paper's reference TL;DRs (1,453 in all) is a query whose one right answer is that paper:
  MRR@10   mean of 1/rank of the paper within the top 10 (0 when it is not there)
  R@10     share of queries with the paper in the top 10
  empty    share of queries with no result at all
  1 copy   MRR@10 with a synthetic paper's copies counted once (searched 100 deep): a
           synthetic paper repeats a real paper's words, so at 2.5M a real paper that
           outranks a known item does so 50 times; this figure is the one the goal of
           "the same MRR at 2.5M as at 50k" is judged on, the plain one is shown beside it
Latency: p50/p99 of one search call (20 results; for semantic and hybrid the query is
embedded inside the call), per query set:
  titles     200 single words from real titles (bench.ingest.title_queries)
  sentences  100 TL;DRs
  filtered   50: cat:cs.LG / cat:cs.CV with one or two common title words, or
             date:2025-09..2025-12 with one
Backends and modes:
  database (FTS5)        the database engine on SQLite: every word required, the newest
                         PAPERSHELF_SEARCH_RANK_WINDOW matches ranked (the old search)
  database OR, window    the same with the query's words joined by OR and the rank window
                         lifted, so every match is ranked: the issue's reference point (at
                         50k only: each query ranks most of the store)
  database (PostgreSQL)  the database engine on PostgreSQL (tsvector)
  index keyword          the full-text index (app.search.fulltext): search_papers(engine=)
  index semantic         app.hybrid.search(mode=): the vector index, the query embedded by
  index hybrid           the query encoder; hybrid fuses it with the full-text index
Embeddings: the real papers' come from bench.vectors' cache (`real_vectors`; without the
cache --quick leaves semantic and hybrid out), the known items' are computed here
(ml.embeddings, ONNX), a synthetic paper's is its source paper's plus noise (as in
bench.vectors). Build times: the import, the embeddings written, the vector index and the
full-text index (with its size on disk).

The goals are printed beside the figures, each with ok or MISSED. Temporary files go to
$TMPDIR (the 2.5M store needs ~10 GB).
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import sqlalchemy as sa

from app.artifacts import embeddings
from app.db import store
from app.db.models import Paper
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.search import index_tokens, search_papers
from app.search.base import SearchPage
from app.settings import Settings, get_settings
from bench.ingest import find_data, full_import, pg_admin_url, read_lines, synthetic, title_queries
from bench.related import FILE

SCITLDR = Path("scitldr") / "dev.jsonl"
K = 10  # relevance is judged on the top 10
# With synthetic papers the known items are searched this deep, so that the copies of one
# source can be counted once (see `collapse`).
DEEP = 100
PAGE = 20  # latency: one page of results, as the site shows it
KNOWN_CATEGORY = "cs.LG"
KNOWN_FIRST_DAY = date(2018, 1, 2)
KNOWN_LAST_DAY = date(2019, 12, 20)
LIFTED_WINDOW = 10**9
FILTER_DATES = "date:2025-09..2025-12"
# The goals.
GOAL_MRR = 0.90
GOAL_RECALL = 0.95
GOAL_EMPTY = 0.01
GOAL_SAME_MRR = 0.01  # "the same MRR" at scale: within this of the real store's
GOAL_MS = {"real": (20.0, 100.0), "scale": (50.0, 250.0)}  # (p50, p99)

Engine = Literal["index", "database"]
Mode = Literal["keyword", "semantic", "hybrid"]
papers_t = Paper.__table__


# --- known items -------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownItem:
    arxiv_id: str
    title: str
    abstract: str
    tldrs: tuple[str, ...]
    day: date


def known_items(path: Path, first_day: date = KNOWN_FIRST_DAY) -> list[KnownItem]:
    """The SciTLDR papers, spread over 2018-2019 (older than every real paper), with ids of
    the form yymm.9nnnn: real cs papers of those months never reached 90000."""
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    span = (KNOWN_LAST_DAY - first_day).days
    items = []
    for i, r in enumerate(rows):
        day = first_day + timedelta(days=i * span // max(1, len(rows) - 1))
        items.append(
            KnownItem(
                arxiv_id=f"{day:%y%m}.{90000 + i:05d}",
                title=r["title"].strip(),
                abstract=" ".join(r["source"]),
                tldrs=tuple(t for t in r["target"] if t.strip()),
                day=day,
            )
        )
    return items


def known_records(items: Sequence[KnownItem]) -> list[PaperRecord]:
    """The known items as the store's records. SciTLDR names no authors: none are stored,
    so no author field can match a query's words."""
    return [
        PaperRecord(
            arxiv_id=it.arxiv_id,
            title=it.title,
            abstract=it.abstract,
            authors=[],
            primary_category=KNOWN_CATEGORY,
            categories=[KNOWN_CATEGORY],
            version=1,
            announcements=[Announcement(KNOWN_CATEGORY, it.day, AnnounceKind.NEW, i)],
            source="scitldr",
        )
        for i, it in enumerate(items)
    ]


# --- query sets --------------------------------------------------------------------------


def known_queries(
    items: Sequence[KnownItem], limit: int | None = None, seed: int = 3
) -> list[tuple[str, str]]:
    """(TL;DR, the paper's id) for every reference TL;DR; a random `limit` of them."""
    pairs = [(t, it.arxiv_id) for it in items for t in it.tldrs]
    if limit is not None and limit < len(pairs):
        pairs = random.Random(seed).sample(pairs, limit)
    return pairs


def common_title_words(lines: Sequence[bytes], top: int = 60) -> list[str]:
    """The most frequent longer words of the real titles."""
    counts = Counter(
        w.lower()
        for line in lines
        for w in orjson.loads(line)["title"].split()
        if w.isalpha() and len(w) > 4
    )
    return [w for w, _ in counts.most_common(top)]


def filtered_queries(words: Sequence[str], n: int, seed: int = 5) -> list[str]:
    """A category with one or two words, the other category likewise, a date range with one
    word, in turn."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 3 == 2:
            out.append(f"{FILTER_DATES} {rng.choice(words)}")
        else:
            cat = "cs.LG" if i % 3 == 0 else "cs.CV"
            out.append(f"cat:{cat} " + " ".join(rng.sample(list(words), rng.choice((1, 2)))))
    return out


@dataclass(frozen=True)
class QuerySets:
    known: list[tuple[str, str]]  # (query, the one right paper)
    latency: dict[str, list[str]]  # query set name -> queries


def query_sets(
    lines: Sequence[bytes], items: Sequence[KnownItem], known_limit: int | None
) -> QuerySets:
    sentences = [q for q, _ in known_queries(items, 100, seed=17)]
    return QuerySets(
        known=known_queries(items, known_limit),
        latency={
            "titles": title_queries(list(lines), 200),
            "sentences": sentences,
            "filtered": filtered_queries(common_title_words(lines), 50),
        },
    )


# --- evaluation (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class Relevance:
    queries: int
    mrr: float  # MRR@k
    recall: float  # recall@k: share of queries with the right paper in the top k
    empty: float  # share of queries with no result


def rank_of(target: str, ranking: Sequence[str], k: int = K) -> int | None:
    """The 1-based rank of `target` within the first k of `ranking`, None when not there."""
    for i, found in enumerate(ranking[:k]):
        if found == target:
            return i + 1
    return None


def relevance(rankings: Sequence[Sequence[str]], targets: Sequence[str], k: int = K) -> Relevance:
    """Known-item figures of ranked result lists, each with its one right answer."""
    if len(rankings) != len(targets):
        raise ValueError(f"{len(rankings)} rankings for {len(targets)} targets")
    if not rankings:
        return Relevance(0, 0.0, 0.0, 0.0)
    ranks = [rank_of(t, r, k) for r, t in zip(rankings, targets, strict=True)]
    n = len(ranks)
    return Relevance(
        queries=n,
        mrr=sum(1 / r for r in ranks if r is not None) / n,
        recall=sum(r is not None for r in ranks) / n,
        empty=sum(not r for r in rankings) / n,
    )


def p50_p99(ms: Sequence[float]) -> tuple[float, float]:
    """Median, and the 99th percentile as the value 99% of the sorted times stay at or below
    (the slowest for fewer than 100)."""
    if not ms:
        return 0.0, 0.0
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, max(0, -(-99 * len(ordered) // 100) - 1))]
    return statistics.median(ordered), p99


def collapse(ranking: Sequence[str], source_of: Callable[[str], str]) -> list[str]:
    """The ranking with each source's first paper only: a synthetic paper's source is the
    real paper it copies (its words, shuffled), every other paper is its own."""
    seen: set[str] = set()
    out = []
    for arxiv_id in ranking:
        src = source_of(arxiv_id)
        if src not in seen:
            seen.add(src)
            out.append(arxiv_id)
    return out


def synthetic_sources(source_ids: Sequence[str]) -> Callable[[str], str]:
    """The source of bench.ingest.synthetic's papers: paper i has id 9000+i//100000 "."
    i%100000 (no real id starts at 9000 before 2090) and copies source_ids[i % len]."""

    def source_of(arxiv_id: str) -> str:
        head, _, tail = arxiv_id.partition(".")
        if len(head) == 4 and head.isdigit() and int(head) >= 9000 and tail.isdigit():
            return source_ids[((int(head) - 9000) * 100_000 + int(tail)) % len(source_ids)]
        return arxiv_id

    return source_of


def or_words(text: str) -> str:
    """The query's words, each once, joined by OR (what the reference point searches)."""
    return " OR ".join(dict.fromkeys(index_tokens(text)))


# --- configurations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One backend and mode, as a table row names it."""

    name: str
    engine: Engine | None
    mode: Mode | None = None
    or_words: bool = False  # the query's words joined by OR
    rank_window: int | None = None  # PAPERSHELF_SEARCH_RANK_WINDOW while it runs
    dialect: str = "sqlite"
    at_scale: bool = True  # also on the synthetic stores
    baseline: bool = False  # the row latencies are compared with

    @property
    def needs_vectors(self) -> bool:
        return self.mode in ("semantic", "hybrid")

    def text(self, query: str) -> str:
        return or_words(query) if self.or_words else query


DB_FTS5 = Config("database (FTS5)", "database", baseline=True)
DB_OR = Config(
    "database OR, window lifted",
    "database",
    or_words=True,
    rank_window=LIFTED_WINDOW,
    at_scale=False,
)
DB_PG = Config("database (PostgreSQL)", "database", dialect="postgresql", baseline=True)
INDEX_KEYWORD = Config("index keyword", "index")  # search_papers(engine="index")
INDEX_SEMANTIC = Config("index semantic", "index", "semantic")
INDEX_HYBRID = Config("index hybrid", "index", "hybrid")
CONFIGS = (DB_FTS5, DB_OR, DB_PG, INDEX_KEYWORD, INDEX_SEMANTIC, INDEX_HYBRID)
BASELINES = {c.name for c in CONFIGS if c.baseline}


def check_search_signature() -> None:
    """The engine argument this benchmark compares (Search II)."""
    if "engine" not in inspect.signature(search_papers).parameters:
        sys.exit(
            "bench: app.search.search_papers takes no `engine` argument: this benchmark "
            "needs the full-text index engine (app.search.fulltext)"
        )


def modes_search() -> Callable[..., SearchPage] | None:
    """`app.hybrid.search`, which serves the semantic and hybrid modes; None without it."""
    try:
        from app.hybrid import search as by_mode
    except ImportError:
        return None
    return by_mode


# --- embeddings --------------------------------------------------------------------------


class Vectors:
    """The embeddings the stores get, and the query encoder's model file.

    Real papers: bench.vectors' cache. Known items: embedded here with the ONNX backend,
    whose model file (built once into the bench cache) is also the query encoder's.
    Synthetic papers: their source paper's vector plus noise, as bench.vectors makes them."""

    def __init__(self, items: Sequence[KnownItem], embed: Sequence[bytes] = ()) -> None:
        from bench.vectors import cache_dir, real_vectors
        from ml.embeddings import VERSION, load_embedder

        self.version = VERSION
        embedder = load_embedder("cpu", "onnx", cache_dir=cache_dir() / "embedder")
        if embed:  # --embed-real: these papers embedded here, not read from the cache
            rows = [orjson.loads(line) for line in embed]
            ids = np.array([r["id"] for r in rows])
            vecs, secs = timed(
                lambda: embedder.embed([(r["title"], r["abstract"]) for r in rows], 64)
            )
            log(f"embedded {len(rows)} real papers in {secs:.1f}s ({embedder.backend})")
        else:
            ids, vecs = real_vectors()
        self.real = {str(a): i for i, a in enumerate(ids)}
        self.real_vecs = vecs
        self.model: Path = embedder.path  # type: ignore[attr-defined]
        self.known_ids = [it.arxiv_id for it in items]
        (self.known_vecs, secs) = timed(
            lambda: embedder.embed([(it.title, it.abstract) for it in items])
        )
        log(f"embedded {len(items)} known items in {secs:.1f}s ({embedder.backend})")
        self.rng = np.random.default_rng(23)

    def known_and_real(self) -> Iterator[tuple[str, np.ndarray]]:
        yield from zip(self.known_ids, self.known_vecs, strict=True)
        for arxiv_id, row in self.real.items():
            yield arxiv_id, self.real_vecs[row]

    def noisy(self, source_ids: Sequence[str]) -> np.ndarray:
        from bench.vectors import SIGMA, unit

        base = self.real_vecs[[self.real[a] for a in source_ids]]
        noise = self.rng.standard_normal(base.shape, dtype=np.float32)
        return unit(base + noise * (SIGMA / np.sqrt(base.shape[1])))

    def install_encoder(self, settings: Settings) -> None:
        """The query encoder's model where the app looks for it (a link to the cached file)."""
        dest = settings.embedder_cache_dir / self.model.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            dest.symlink_to(self.model)


def write_embeddings(
    engine: sa.Engine, vectors: Iterator[tuple[str, np.ndarray]], model_version: str
) -> int:
    """Store vectors of the papers the store has, against each paper's version (what the
    ML pool would have written). Returns how many."""
    written = 0
    while chunk := dict(islice(vectors, 2000)):
        with engine.begin() as conn:
            versions = dict(
                conn.execute(
                    sa.select(papers_t.c.arxiv_id, papers_t.c.version).where(
                        papers_t.c.arxiv_id.in_(list(chunk))
                    )
                ).all()
            )
            rows = [
                embeddings.Written(a, versions[a], model_version, v)
                for a, v in chunk.items()
                if a in versions
            ]
            embeddings.upsert(conn, rows)
        written += len(rows)
    return written


# --- stores ------------------------------------------------------------------------------


@dataclass
class Store:
    kind: Literal["real", "scale"]
    synthetic: int
    url: str
    data_dir: Path
    engine: sa.Engine
    papers: int = 0
    builds: dict[str, float] = field(default_factory=dict)  # seconds, MiB, counts
    semantic: bool = False  # embeddings and the vector index are there
    # Synthetic paper -> the real paper it copies (None without synthetic papers).
    source_of: Callable[[str], str] | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def name(self) -> str:
        base = "real" if not self.synthetic else f"real + {self.synthetic:,} synth"
        return f"{base} ({'PostgreSQL' if self.dialect == 'postgresql' else 'SQLite'})"

    @property
    def env(self) -> dict[str, str]:
        """Settings that point every derived file into the store's own temporary dir."""
        return {
            "PAPERSHELF_DATA_DIR": str(self.data_dir),
            "PAPERSHELF_DATABASE_URL": self.url,
            "PAPERSHELF_VECTORS_PATH": str(self.data_dir / "vectors"),
            "PAPERSHELF_SEARCH_INDEX_PATH": str(self.data_dir / "search"),
        }


@contextmanager
def settings_env(env: dict[str, str]) -> Iterator[Settings]:
    """`get_settings()` as `env` makes it, for the block."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def dir_mib(path: Path | None) -> float:
    if path is None or not path.exists():
        return 0.0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def make_store(
    url: str,
    data_dir: Path,
    source: Path,
    lines: Sequence[bytes],
    items: Sequence[KnownItem],
    *,
    synthetic_n: int = 0,
    vectors: Vectors | None = None,
    fulltext_index: bool = True,
) -> Store:
    """Import the real papers, the known items and `synthetic_n` synthetic papers; write
    their embeddings and build the vector index when `vectors` is given; then build the
    full-text index, timed alone."""
    data_dir.mkdir(parents=True, exist_ok=True)
    row, engine = full_import("import", url, source)
    kind: Literal["real", "scale"] = "scale" if synthetic_n else "real"
    s = Store(kind, synthetic_n, url, data_dir, engine)  # type: ignore[arg-type]
    s.builds["import_s"] = row.seconds
    with s.engine.begin() as conn:
        store.upsert_papers(conn, known_records(items))
    with settings_env(s.env) as settings:
        if vectors is not None:
            n, s.builds["embeddings_s"] = timed(
                lambda: write_embeddings(s.engine, vectors.known_and_real(), vectors.version)
            )
            s.builds["embedded"] = n
        if synthetic_n:
            s.source_of = synthetic_sources([orjson.loads(line)["id"] for line in lines])
            secs, vec_secs = import_synthetic(s.engine, lines, synthetic_n, vectors)
            s.builds["synthetic_s"] = secs
            if vectors is not None:
                s.builds["embeddings_s"] += vec_secs
                s.builds["embedded"] += synthetic_n
        with s.engine.connect() as conn:
            s.papers = int(conn.scalar(sa.select(sa.func.count()).select_from(papers_t)) or 0)
        if s.dialect == "postgresql":
            # Planner statistics, as autovacuum keeps them on a server that has been up a
            # while; right after a bulk load PostgreSQL plans without them.
            with s.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        if vectors is not None:
            from app.vectors import rebuild as rebuild_vectors

            _, s.builds["vector_index_s"] = timed(lambda: rebuild_vectors(settings, s.engine))
            s.builds["vector_index_mib"] = dir_mib(settings.vectors_path)
            vectors.install_encoder(settings)
            s.semantic = True
        if fulltext_index:
            from app.search import fulltext

            _, s.builds["fulltext_s"] = timed(lambda: fulltext.rebuild(settings, s.engine))
            s.builds["fulltext_mib"] = dir_mib(fulltext.index_dir(settings, s.engine.url))
    log(f"store {s.name}: {s.papers:,} papers, {s.builds}")
    return s


def import_synthetic(
    engine: sa.Engine, lines: Sequence[bytes], n: int, vectors: Vectors | None
) -> tuple[float, float]:
    """bench.ingest.synthetic's papers, each batch's embeddings written after it. Returns
    (seconds writing papers, seconds making and writing embeddings); generating the papers
    is in neither."""
    # synthetic() derives paper i from lines[i % len(lines)]: its source, for the vector.
    source_ids = [orjson.loads(line)["id"] for line in lines]
    papers_s = vectors_s = 0.0
    done = 0
    for batch in synthetic(list(lines), n):
        t = time.perf_counter()
        with engine.begin() as conn:
            store.upsert_papers(conn, batch)
        papers_s += time.perf_counter() - t
        if vectors is not None:
            t = time.perf_counter()
            src = [source_ids[(done + j) % len(source_ids)] for j in range(len(batch))]
            rows = zip([r.arxiv_id for r in batch], vectors.noisy(src), strict=True)
            with engine.begin() as conn:
                embeddings.upsert(
                    conn, [embeddings.Written(a, None, vectors.version, v) for a, v in rows]
                )
            vectors_s += time.perf_counter() - t
        done += len(batch)
        if done % 100_000 < len(batch):
            log(f"  {done:,} synthetic papers")
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return papers_s, vectors_s


@contextmanager
def postgres_url(admin: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server, dropped afterwards."""
    import psycopg

    name = f"papershelf_bench_search_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- runs --------------------------------------------------------------------------------


@dataclass
class Result:
    store: str
    kind: Literal["real", "scale"]
    config: str
    engine: str | None  # the engine asked for (None: the settings')
    queries: str  # "known items" or a latency set's name
    n: int
    p50_ms: float
    p99_ms: float
    relevance: Relevance | None = None
    # With synthetic papers: the copies of one source counted once (see `collapse`).
    distinct: Relevance | None = None
    modes: dict[str, int] = field(default_factory=dict)  # the modes the pages say were used
    notices: list[str] = field(default_factory=list)


def forget_results() -> None:
    """Empty app.hybrid's cache of ranked results: every call is timed as a first search
    (the sentence set repeats known-item queries; title words repeat)."""
    if "app.hybrid" in sys.modules:
        sys.modules["app.hybrid"].CACHE.clear()


def search(conn: sa.Connection, cfg: Config, text: str, limit: int) -> SearchPage:
    """One search as `cfg` asks: an engine's keyword search, or a mode of `app.hybrid`
    (whose engine is the settings'; run_config sets it)."""
    if cfg.mode is None:
        return search_papers(conn, cfg.text(text), engine=cfg.engine, limit=limit)
    by_mode = modes_search()
    assert by_mode is not None, "configs_for leaves modes out without app.hybrid"
    return by_mode(conn, cfg.text(text), mode=cfg.mode, limit=limit)


def run_queries(
    conn: sa.Connection, cfg: Config, queries: Sequence[str], limit: int
) -> tuple[list[list[str]], list[float], Counter[str], Counter[str]]:
    """Each query once: the ids found, milliseconds per call, the modes and notices."""
    rankings, ms = [], []
    modes: Counter[str] = Counter()
    notices: Counter[str] = Counter()
    for q in queries:
        forget_results()
        t = time.perf_counter()
        page = search(conn, cfg, q, limit)
        ms.append((time.perf_counter() - t) * 1000)
        rankings.append([h.arxiv_id for h in page.hits])
        modes[f"{page.engine} {page.mode}"] += 1
        notices.update(page.notices)
    return rankings, ms, modes, notices


def run_config(s: Store, cfg: Config, qs: QuerySets) -> list[Result]:
    """One backend and mode on one store: the known items, then each latency set."""
    env = dict(s.env)
    if cfg.mode is not None and cfg.engine is not None:
        env["PAPERSHELF_SEARCH_ENGINE"] = cfg.engine
    if cfg.rank_window is not None:
        env["PAPERSHELF_SEARCH_RANK_WINDOW"] = str(cfg.rank_window)
    out = []
    with settings_env(env), s.engine.connect() as conn:
        # The first call opens the index and loads the encoder: reported, not counted.
        _, cold = timed(lambda: search(conn, cfg, "warm up the cache", PAGE))
        sets: list[tuple[str, Sequence[str], int]] = [
            ("known items", [q for q, _ in qs.known], DEEP if s.source_of else K),
            *((name, queries, PAGE) for name, queries in qs.latency.items()),
        ]
        targets = [t for _, t in qs.known]
        for name, queries, limit in sets:
            rankings, ms, modes, notices = run_queries(conn, cfg, queries, limit)
            r = Result(s.name, s.kind, cfg.name, cfg.engine, name, len(ms), *p50_p99(ms))
            r.modes, r.notices = dict(modes), list(notices)
            if name == "known items":
                r.relevance = relevance(rankings, targets)
                if s.source_of is not None:
                    one = [collapse(found, s.source_of) for found in rankings]
                    r.distinct = relevance(one, targets)
            out.append(r)
    log(
        f"{s.name} / {cfg.name}: first call {cold * 1000:.0f} ms; "
        + "; ".join(
            f"{r.queries} p50 {r.p50_ms:.1f} p99 {r.p99_ms:.1f}"
            + (f" MRR@10 {r.relevance.mrr:.3f}" if r.relevance else "")
            for r in out
        )
    )
    return out


def configs_for(s: Store) -> list[Config]:
    """The rows a store gets: its database's, what it has the indexes and embeddings for."""
    return [
        c
        for c in CONFIGS
        if c.dialect == s.dialect
        and (c.at_scale or s.kind == "real")
        and (s.semantic or not c.needs_vectors)
        and (c.mode is None or modes_search() is not None)
        and (c.engine != "index" or "fulltext_s" in s.builds)
    ]


def default_config(s: Store) -> str:
    """The row of what a search with neither engine nor mode gets on this store (the
    site's search: `app.hybrid.search` when it is there)."""
    by_mode = modes_search() or search_papers
    with settings_env(s.env), s.engine.connect() as conn:
        page = by_mode(conn, "neural networks")
    return DB_FTS5.name if page.engine == "database" else f"{page.engine} {page.mode}"


# --- goals and tables --------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    text: str
    figure: str
    ok: bool | None  # None: not measured in this run


def find(results: Sequence[Result], store: str, config: str, queries: str) -> Result | None:
    for r in results:
        if (r.store, r.config, r.queries) == (store, config, queries):
            return r
    return None


def goals(results: Sequence[Result], stores: Sequence[Store], default: str) -> list[Goal]:
    out: list[Goal] = []
    sqlite = [s for s in stores if s.dialect == "sqlite"]
    real = next((s for s in sqlite if s.kind == "real"), None)
    if real is not None:
        r = find(results, real.name, default, "known items")
        rel = r.relevance if r else None
        out += [
            Goal(
                f"{default}: MRR@10 >= {GOAL_MRR}",
                f"{rel.mrr:.3f}" if rel else "-",
                rel.mrr >= GOAL_MRR if rel else None,
            ),
            Goal(
                f"{default}: recall@10 >= {GOAL_RECALL}",
                f"{rel.recall:.3f}" if rel else "-",
                rel.recall >= GOAL_RECALL if rel else None,
            ),
            Goal(
                f"{default}: empty < {GOAL_EMPTY:.0%}",
                f"{rel.empty:.1%}" if rel else "-",
                rel.empty < GOAL_EMPTY if rel else None,
            ),
        ]
        hyb = find(results, real.name, INDEX_HYBRID.name, "known items")
        kw = find(results, real.name, INDEX_KEYWORD.name, "known items")
        if hyb and kw and hyb.relevance and kw.relevance:
            d = hyb.relevance.mrr - kw.relevance.mrr
            fig = f"{d:+.3f} ({hyb.relevance.mrr:.3f} vs {kw.relevance.mrr:.3f})"
            out.append(Goal("hybrid ahead of keyword on MRR@10", fig, d > 0))
        else:
            out.append(Goal("hybrid ahead of keyword on MRR@10", "-", None))
    for s in sqlite:
        p50_goal, p99_goal = GOAL_MS[s.kind]
        for name in ("titles", "sentences", "filtered"):
            r = find(results, s.name, default, name)
            out.append(
                Goal(
                    f"{s.name}, {name}: p50 < {p50_goal:g} ms, p99 < {p99_goal:g} ms",
                    f"{r.p50_ms:.1f} / {r.p99_ms:.1f} ms" if r else "-",
                    (r.p50_ms < p50_goal and r.p99_ms < p99_goal) if r else None,
                )
            )
        if s.kind == "scale" and real is not None:
            at = find(results, s.name, default, "known items")
            base = find(results, real.name, default, "known items")
            if at and base and at.relevance and at.distinct and base.relevance:
                # Judged with the copies counted once: a real paper ranked above a known
                # item is there once at 50k and 1 + N/50k times here, which says nothing
                # about the engine.
                d = at.relevance.mrr - base.relevance.mrr
                d1 = at.distinct.mrr - base.relevance.mrr
                out.append(
                    Goal(
                        f"{s.name}: the same MRR@10 as real (+-{GOAL_SAME_MRR}, copies once)",
                        f"{at.distinct.mrr:.3f} ({d1:+.3f}); all {at.relevance.mrr:.3f} ({d:+.3f})",
                        abs(d1) <= GOAL_SAME_MRR,
                    )
                )
    return out


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else "ok" if ok else "MISSED"


def print_tables(
    stores: Sequence[Store], results: Sequence[Result], gs: Sequence[Goal], default: str
) -> None:
    print(
        f"\n{'store':<34}{'papers':>11}{'import s':>10}{'embed s':>9}{'vectors s':>11}"
        f"{'vec MiB':>9}{'index s':>9}{'index MiB':>11}"
    )
    for s in stores:
        b = s.builds

        def cell(key: str, width: int, b: dict[str, float] = b) -> str:
            return f"{b[key]:>{width}.1f}" if key in b else f"{'-':>{width}}"

        imported = b.get("import_s", 0.0) + b.get("synthetic_s", 0.0)
        print(
            f"{s.name:<34}{s.papers:>11,}{imported:>10.1f}{cell('embeddings_s', 9)}"
            f"{cell('vector_index_s', 11)}{cell('vector_index_mib', 9)}"
            f"{cell('fulltext_s', 9)}{cell('fulltext_mib', 11)}"
        )

    known = [r for r in results if r.relevance]
    if known:
        n = known[0].n
        copies = any(r.distinct for r in known)
        print(
            f"\nKnown items: {n:,} TL;DR queries, one right paper each, top {K}"
            + (f" (1 copy: synthetic copies counted once, searched {DEEP} deep)" if copies else "")
        )
        print(
            f"{'store':<34}{'backend / mode':<28}{'MRR@10':>8}{'R@10':>8}{'empty':>8}"
            f"{'1 copy':>8}{'p50 ms':>9}{'p99 ms':>9}  mode used"
        )
        for r in known:
            rel = r.relevance
            assert rel is not None
            one = f"{r.distinct.mrr:>8.3f}" if r.distinct else f"{'-':>8}"
            used = ", ".join(f"{m} {c}" for m, c in r.modes.items())
            print(
                f"{r.store:<34}{r.config:<28}{rel.mrr:>8.3f}{rel.recall:>8.3f}{rel.empty:>8.1%}"
                f"{one}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}  {used}"
            )

    print(f"\nLatency: one search call, {PAGE} results ({default} is the default)")
    print(
        f"{'store':<34}{'backend / mode':<28}{'queries':<11}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'p50 x db':>10}  goal"
    )
    for r in results:
        if r.relevance:
            continue
        base = next(
            (
                b
                for b in results
                if b.store == r.store and b.queries == r.queries and b.config in BASELINES
            ),
            None,
        )
        ratio = f"{r.p50_ms / base.p50_ms:>10.2f}" if base and base.p50_ms else f"{'-':>10}"
        p50_goal, p99_goal = GOAL_MS[r.kind]
        ok = r.p50_ms < p50_goal and r.p99_ms < p99_goal
        goal = "baseline" if r.config in BASELINES else verdict(ok) if r.engine == "index" else ""
        print(
            f"{r.store:<34}{r.config:<28}{r.queries:<11}{r.n:>5}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
            f"{ratio}  {goal}"
        )

    print(f"\n{'goal':<78}{'figure':>34}  verdict")
    for g in gs:
        print(f"{g.text:<78}{g.figure:>34}  {verdict(g.ok)}")
    notes = {(r.config, n) for r in results for n in r.notices}
    for config, note in sorted(notes):
        print(f"note ({config}): {note}")


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="5k real papers, 20k synthetic")
    ap.add_argument(
        "--sizes",
        default=None,
        help="stores: `real` (the real papers and the known items) and synthetic counts\n"
        "added to them (default real,2500000; --quick real,20000)",
    )
    ap.add_argument(
        "--known-queries", type=int, default=None, help="TL;DR queries (default all; quick 300)"
    )
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--no-semantic", action="store_true", help="no embeddings: keyword only")
    ap.add_argument(
        "--embed-real",
        action="store_true",
        help="embed the real papers here (ONNX) instead of reading bench.vectors' cache;\n"
        "slow: about 20 papers/s on 2 cores, for --quick's 5k",
    )
    ap.add_argument("--real", type=int, default=None, help="real papers (default all; quick 5k)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    check_search_signature()

    sizes_arg = args.sizes or ("real,20000" if args.quick else "real,2500000")
    sizes = [0 if s.strip() == "real" else int(s) for s in sizes_arg.split(",")]
    data = find_data()
    lines = read_lines(data / FILE, args.real or (5000 if args.quick else None))
    items = known_items(data / SCITLDR)
    known_limit = args.known_queries or (300 if args.quick else None)
    qs = query_sets(lines, items, known_limit)

    vectors = None
    if not args.no_semantic:
        from bench.vectors import CACHE_FILE, cache_dir

        if modes_search() is None:
            log("no app.hybrid: keyword only")
        elif args.embed_real:
            vectors = Vectors(items, embed=lines)
        elif args.quick and not (cache_dir() / CACHE_FILE).exists():
            log("no cached embeddings (--quick does not compute them): keyword only")
        else:
            vectors = Vectors(items)

    stores: list[Store] = []
    results: list[Result] = []
    default: str | None = None
    with tempfile.TemporaryDirectory(prefix="papershelf-bench-search-") as tmp:
        work = Path(tmp)
        source = data / FILE
        if args.quick or args.real:
            source = work / "papers.jsonl.gz"
            with gzip.open(source, "wb", compresslevel=1) as fh:
                fh.writelines(lines)

        def measure(s: Store) -> None:
            stores.append(s)
            for cfg in configs_for(s):
                results.extend(run_config(s, cfg, qs))
            s.engine.dispose()
            shutil.rmtree(s.data_dir)  # the 2.5M store's files before the next one's

        for n in sizes:
            d = work / (f"synthetic-{n}" if n else "real")
            url = f"sqlite:///{d / 'papers.db'}"
            s = make_store(url, d, source, lines, items, synthetic_n=n, vectors=vectors)
            default = default or default_config(s)
            measure(s)
            # PostgreSQL: the database engine at the real size, beside SQLite's.
            if not n and not args.skip_postgres and (admin := pg_admin_url()):
                with postgres_url(admin) as url:
                    d = work / "postgres"
                    measure(make_store(url, d, source, lines, items, fulltext_index=False))

    assert default is not None
    gs = goals(results, stores, default)
    print_tables(stores, results, gs, default)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "default": default,
                    "stores": [{"store": s.name, "papers": s.papers, **s.builds} for s in stores],
                    "results": [asdict(r) for r in results],
                    "goals": [asdict(g) for g in gs],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
