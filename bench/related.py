"""[Related] benchmark: embedding relatedness against TF-IDF keywords and a title-words search.

    python -m bench.related            # the 50k real cs papers, 200 random query papers
    python -m bench.related --quick    # 5k papers, 50 queries
    python -m bench.related --json out.json

Imports the real listing file into a temporary SQLite store, times `app.artifacts.related.build`,
stores the papers' cached embeddings (bench.vectors' real-vector cache) and builds the
vector index, then for each query paper of two random samples compares the top 10 of
  embedding `app.vectors.related` as shipped: the nearest 50 by embedding re-ordered by the
            rare words they share (TF-IDF cosine, document frequencies from the full-text
            index); no category/author blend: those are the proxies below
  neighbours the nearest 10 by embedding alone
  keywords  `app.artifacts.related.related` (keywords OR-ed as phrases, cosine re-scored)
  baseline  a search for the paper's title words OR-ed, best first, without the paper
on proxies of relatedness that need no labels:
  category  share of results with the query's primary category and, when the query has
            secondary categories, at least one of them
  primary   share of results with the query's primary category
  authors   share of results sharing at least one author with the query
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Connection

from app.artifacts import embeddings
from app.artifacts import related as rel
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.db.models import Paper
from app.importer import import_file
from app.search import fulltext
from app.search.backend import search_papers
from app.settings import get_settings
from app.vectors import VectorIndex
from app.vectors import related as vrel
from bench.ingest import find_data

FILE = "arxiv/papers_cs_2025-08-05_2026-07-01.jsonl.gz"
TOP = 10
papers = Paper.__table__


def baseline(conn: Connection, arxiv_id: str, title: str, limit: int = TOP) -> list[str]:
    """Keyword search: the title's words (stop words out) OR-ed, the paper itself dropped."""
    ws = list(dict.fromkeys(w for w in rel.words(title) if w))
    if not ws:
        return []
    page = search_papers(conn, " OR ".join(ws), limit=limit + 1)
    return [h.arxiv_id for h in page.hits if h.arxiv_id != arxiv_id][:limit]


def store_embeddings(engine: sa.Engine) -> int:
    """Write the cached real embeddings of the papers in the store into paper_embeddings
    (what the ML pool would have written). Returns how many."""
    from bench.vectors import real_vectors

    ids, vecs = real_vectors()
    with engine.begin() as conn:
        known = set(conn.scalars(sa.select(papers.c.arxiv_id)))
        rows = [
            embeddings.Written(str(a), None, "bench-cache", v)
            for a, v in zip(ids, vecs, strict=True)
            if str(a) in known
        ]
        for i in range(0, len(rows), 5000):
            embeddings.upsert(conn, rows[i : i + 5000])
    return len(rows)


def measure(
    conn: Connection, queries: list[sa.Row], method: Callable[[sa.Row], list[str]]
) -> dict[str, float]:
    cat, prim, auth, found, secs = [], [], [], [], []
    for q in queries:
        t = time.perf_counter()
        ids = method(q)
        secs.append(time.perf_counter() - t)
        found.append(len(ids))
        if not ids:
            cat.append(0.0), prim.append(0.0), auth.append(0.0)
            continue
        rows = conn.execute(
            sa.select(papers.c.primary_category, papers.c.categories, papers.c.authors).where(
                papers.c.arxiv_id.in_(ids)
            )
        ).all()
        secondary = set(q.categories) - {q.primary_category}
        authors = set(q.authors)
        same_primary = [r.primary_category == q.primary_category for r in rows]
        same_cats = [
            p and (not secondary or bool(secondary & set(r.categories)))
            for p, r in zip(same_primary, rows, strict=True)
        ]
        # Missing results count as misses: a method must fill its top 10 to score.
        cat.append(sum(same_cats) / TOP)
        prim.append(sum(same_primary) / TOP)
        auth.append(sum(bool(authors & set(r.authors)) for r in rows) / TOP)
    return {
        "category": statistics.mean(cat),
        "primary": statistics.mean(prim),
        "authors": statistics.mean(auth),
        "results": statistics.mean(found),
        "ms_per_query": 1000 * statistics.mean(secs),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5k papers, 50 queries")
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--seed", type=int, default=7, help="the first sample's seed (+1: second)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    n_queries = args.queries or (50 if args.quick else 200)
    path = find_data() / FILE
    if not path.exists():
        sys.exit(f"bench: {path} not found")

    with tempfile.TemporaryDirectory() as tmp:
        src = path
        if args.quick:  # the first 5k lines as their own file
            import gzip

            src = Path(tmp) / "quick.jsonl.gz"
            with gzip.open(path, "rt") as fin, gzip.open(src, "wt") as fout:
                for i, line in enumerate(fin):
                    if i >= 5000:
                        break
                    fout.write(line)
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        t = time.perf_counter()
        report = import_file(engine, src)
        t_import = time.perf_counter() - t
        t = time.perf_counter()
        with engine.begin() as conn:
            n = rel.build(conn)
        t_build = time.perf_counter() - t
        print(
            f"imported {report.papers} papers in {t_import:.1f}s; "
            f"built keywords for {n} papers in {t_build:.1f}s"
        )

        t = time.perf_counter()
        fulltext.rebuild(get_settings(), engine)
        words = fulltext.fulltext_for(get_settings(), engine.url)
        print(f"built the full-text index in {time.perf_counter() - t:.1f}s")

        t = time.perf_counter()
        from bench.vectors import CACHE_FILE, cache_dir

        if args.quick and not (cache_dir() / CACHE_FILE).exists():
            print("no cached embeddings (--quick does not compute them): no embedding row")
            n_vec = 0
        else:
            n_vec = store_embeddings(engine)
        index = VectorIndex(Path(tmp) / "vectors")
        index.build(engine)
        t_vec = time.perf_counter() - t
        print(f"stored and indexed {n_vec} embeddings in {t_vec:.1f}s")

        samples = []
        with engine.connect() as conn:
            index.refresh(conn, force=True)
            ids = conn.scalars(sa.select(papers.c.arxiv_id).order_by(papers.c.arxiv_id)).all()
            for seed in (args.seed, args.seed + 1):
                picked = random.Random(seed).sample(list(ids), min(n_queries, len(ids)))
                queries = conn.execute(
                    sa.select(
                        papers.c.arxiv_id,
                        papers.c.title,
                        papers.c.primary_category,
                        papers.c.categories,
                        papers.c.authors,
                    ).where(papers.c.arxiv_id.in_(picked))
                ).all()

                def by_embedding(q: sa.Row, conn: Connection = conn) -> list[str]:
                    found = vrel.related(conn, index, q.arxiv_id, TOP, fulltext=words)
                    return [a for a, _ in found.pairs] if found.method == "embedding" else []

                def neighbours(q: sa.Row, conn: Connection = conn) -> list[str]:
                    found = vrel.related(conn, index, q.arxiv_id, TOP)
                    return [a for a, _ in found.pairs] if found.method == "embedding" else []

                samples.append(
                    {
                        "seed": seed,
                        **(
                            {
                                "embedding": measure(conn, queries, by_embedding),
                                "neighbours": measure(conn, queries, neighbours),
                            }
                            if n_vec
                            else {}
                        ),
                        "keywords": measure(
                            conn,
                            queries,
                            lambda q, conn=conn: [a for a, _ in rel.related(conn, q.arxiv_id, TOP)],
                        ),
                        "baseline": measure(
                            conn, queries, lambda q, conn=conn: baseline(conn, q.arxiv_id, q.title)
                        ),
                    }
                )
        engine.dispose()

    # Without cached embeddings (a --quick run) the embedding row is left out, not zero.
    methods = (
        ("embedding", "neighbours", "keywords", "baseline") if n_vec else ("keywords", "baseline")
    )
    print(f"\n{len(queries)} query papers per sample, top {TOP}, {n} papers in the store\n")
    print(
        f"{'metric':<14}"
        + "".join(f"{m + ' s' + str(i + 1):>14}" for m in methods for i in range(2))
    )
    for key in ("category", "primary", "authors", "results", "ms_per_query"):
        cells = "".join(f"{s[m][key]:>14.3f}" for m in methods for s in samples)
        print(f"{key:<14}{cells}")
    results = {"samples": samples, "vectors_build_s": t_vec, "embedded": n_vec}
    if args.json:
        args.json.write_text(
            json.dumps(
                {"papers": n, "queries": len(queries), "build_s": t_build, **results}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
