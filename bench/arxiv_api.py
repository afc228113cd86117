"""arXiv-compatible API benchmark: latency of `GET /api/query` on the real papers, beside the
same information need asked of our own `/api/v1/search` (the baseline, in the same run), and
a quality guard on what the answers hold.

    python -m bench.arxiv_api                 # 49,866 real papers, SQLite and PostgreSQL
    python -m bench.arxiv_api --skip-postgres --repeat 11 --json out.json
    python -m bench.arxiv_api --quick         # smoke run: 2,000 papers, SQLite, 2 repeats

Stores: the real cs listing file (bench.related.FILE) imported as `papershelf import` does
it, with the full-text index built (the baseline's default engine), each in a temporary
directory with its own data dir; PostgreSQL in a fresh database on
PAPERSHELF_TEST_POSTGRES_URL, dropped afterwards.
Cases (`CASES`): arXiv-style queries, each with max_results=10 as arXiv's default, from one
rare word to a common word alone, phrases, an author, a category with a word, AND / OR /
ANDNOT, a date range, a comment search, an id_list of 50, date order and start=1000; each
beside the /api/v1/search query (or the 50 /api/v1/papers/{id} calls) that asks the same.
Every call goes through the app (FastAPI's TestClient, in process, the rate limit off).
Rows, per store and case: p50/p95 of `--repeat` calls, and each /api/query row's p50 as a
multiple of the baseline's:
  /api/v1/search         the baseline (app.hybrid's result cache emptied before each call)
  every match ranked     /api/query as it was before the rank window (`legacy_run_query`,
                         kept here verbatim): bm25/ts_rank over every match, whole rows sorted
  rank window            /api/query as shipped: the newest PAPERSHELF_SEARCH_RANK_WINDOW
                         matches ranked, counts and sorts on keys, rows read for the page
The quality guard, per search case, against `legacy_run_query`: the same total, and (where
the total is under arXiv's reach of 30,000) the same set of ids over every page of the
relevance order; the share of the legacy top 10 still in the new top 10 is reported (it
drops only where a query matches more papers than the window holds). The guard failing is
an exit status of 1.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.search import arxiv_search
from app.search.arxiv_query import ListedId, Node, parse_search_query
from app.search.arxiv_search import (
    MAX_PAGE,
    MAX_REACH,
    ArxivEntry,
    ArxivPage,
    SortBy,
    SortOrder,
    run_query,
)
from bench.ingest import find_data, pg_admin_url, read_lines
from bench.related import FILE
from bench.search import Store, forget_results, log, make_store, postgres_url, settings_env

BASELINE = "/api/v1/search"
LEGACY = "every match ranked"
WINDOW = "rank window"
INDEX = "index (not kept)"
DESIGNS = (LEGACY, WINDOW, INDEX)
ID_LIST = 50
TOP = 10


@dataclass(frozen=True)
class Case:
    name: str
    query: dict[str, str]  # /api/query's parameters
    # The same need of our API: /api/v1/search's parameters, or None (no equivalent).
    ours: dict[str, str] | None

    @property
    def searches(self) -> bool:
        return "search_query" in self.query


def _case(name: str, q: str, ours: str | None, **extra: str) -> Case:
    query = {"search_query": q, "max_results": "10", **extra}
    mapped = {"relevance": "relevance", "submittedDate": "date"}[extra.get("sortBy", "relevance")]
    return Case(
        name,
        query,
        None
        if ours is None
        else {"q": ours, "limit": "10", "offset": extra.get("start", "0"), "sort": mapped},
    )


CASES = (
    _case("rare word", "all:hypergraph", "hypergraph"),
    _case("common word", "all:learning", "learning"),
    _case("commonest word", "all:model", "model"),
    _case("title phrase", 'ti:"large language models"', 'ti:"large language models"'),
    _case("abstract phrase", 'abs:"reinforcement learning"', 'abs:"reinforcement learning"'),
    _case("author", "au:wang", "au:wang"),
    _case("cat: + word", "cat:cs.CV AND all:segmentation", "segmentation cat:cs.CV"),
    _case("AND", "ti:diffusion AND abs:protein", "ti:diffusion abs:protein"),
    _case("OR", "ti:transformer OR ti:attention", "ti:transformer OR ti:attention"),
    _case("ANDNOT", "all:graph ANDNOT cat:cs.LG", "graph -cat:cs.LG"),
    _case(
        "date range",
        "cat:cs.LG AND submittedDate:[202601010000 TO 202601312359]",
        "cat:cs.LG date:2026-01",
    ),
    _case("comment", "co:iclr", None),
    _case("by date", "all:learning", "learning", sortBy="submittedDate"),
    _case("start=1000", "all:learning", "learning", start="1000"),
)


def id_list_case(ids: Sequence[str]) -> Case:
    """50 ids in one call; ours: one /api/v1/papers/{id} call each."""
    return Case(f"id_list of {len(ids)}", {"id_list": ",".join(ids), "max_results": "50"}, None)


# --- the implementation before the rank window (the guard's reference) ------------------


def legacy_run_query(
    conn: sa.Connection,
    node: Node | None,
    id_list: Sequence[ListedId] = (),
    *,
    sort_by: SortBy = "relevance",
    sort_order: SortOrder = "descending",
    start: int = 0,
    max_results: int = 10,
) -> ArxivPage:
    """`run_query` as it was: every match scored, whole rows sorted, counted through papers."""
    a = arxiv_search
    d = a._dialect(conn)
    compiled = a._compile(d, node) if node is not None else a._Compiled()
    if compiled.fts is not None:
        source, match, score = d.driving(compiled.fts)
        where = [match, *compiled.sql]
    else:
        source, score = a.papers, None
        where = list(compiled.sql)
    if id_list:
        return a._listed(
            conn, source, where, score, id_list, sort_by, sort_order, start, max_results
        )
    if node is None:
        return ArxivPage((), 0, start)
    descending = sort_order == "descending"
    if sort_by == "relevance" and score is not None:
        order = [score.desc() if descending else score.asc()]
    else:
        key = a._date_key(d, sort_by)
        order = [(key.desc() if descending else key.asc()).nulls_last()]
    order.append(a.papers.c.arxiv_id.desc() if descending else a.papers.c.arxiv_id.asc())
    counted = sa.select(a.papers.c.pk).select_from(source).where(*where).limit(MAX_REACH)
    total = conn.execute(sa.select(sa.func.count()).select_from(counted.subquery())).scalar_one()
    entries: tuple[ArxivEntry, ...] = ()
    if max_results > 0 and start < total:
        page = (
            sa.select(*a._COLUMNS)
            .select_from(source)
            .where(*where)
            .order_by(*order)
            .limit(max_results)
            .offset(start)
        )
        entries = tuple(a._entry(r) for r in conn.execute(page))
    return ArxivPage(entries, total, start)


# --- design 2, measured and not kept: the full-text index answers --------------------------


def _index_query(node: Node) -> Any:
    """The tree as a Tantivy query over the full-text index's fields, or None where the index
    holds no such field (co:, jr:, id:, dates) or nothing can match."""
    import tantivy

    from app.search import fulltext as ft
    from app.search.arxiv_query import And, AndNot, Category, Or, Text
    from app.search.query import Term

    fields = {"ti": ("title",), "abs": ("abstract",), "au": ("authors",), "all": ft.ANY_FIELD}
    if isinstance(node, Text):
        if node.field not in fields:
            return None
        parts = [q for f in fields[node.field] if (q := ft._field_query(f, Term(node.tokens)))]
        if not parts:
            return None
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in parts])
    if isinstance(node, Category):
        listed = tantivy.Query.term_set_query(ft.SCHEMA, "cat", list(node.categories))
        return tantivy.Query.const_score_query(listed, 0.0)
    if isinstance(node, And | Or):
        kids = [_index_query(c) for c in node.children]
        if any(k is None for k in kids):
            return None
        occur = tantivy.Occur.Must if isinstance(node, And) else tantivy.Occur.Should
        return tantivy.Query.boolean_query([(occur, k) for k in kids])
    if isinstance(node, AndNot):
        left, right = _index_query(node.left), _index_query(node.right)
        if left is None or right is None:
            return None
        return tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, left), (tantivy.Occur.MustNot, right)]
        )
    return None


def _has_text(node: Node) -> bool:
    from app.search.arxiv_query import Text, leaves

    return any(isinstance(leaf, Text) for leaf in leaves(node))


def index_run_query(
    conn: sa.Connection,
    node: Node | None,
    id_list: Sequence[ListedId] = (),
    *,
    sort_by: SortBy = "relevance",
    sort_order: SortOrder = "descending",
    start: int = 0,
    max_results: int = 10,
) -> ArxivPage:
    """Relevance from the full-text index (BM25, block-max WAND; its count as the total)
    where the tree has words and only fields the index holds; `run_query` for the rest."""
    from app.search import fulltext as ft
    from app.settings import get_settings

    query = _index_query(node) if node is not None and not id_list else None
    if (
        node is None
        or query is None
        or sort_by != "relevance"
        or sort_order != "descending"
        or not _has_text(node)
    ):
        return run_query(
            conn,
            node,
            id_list,
            sort_by=sort_by,
            sort_order=sort_order,
            start=start,
            max_results=max_results,
        )
    index = ft.fulltext_for(get_settings(), conn.engine.url)
    assert index is not None
    index.catch_up(conn)
    reader = index.reader()
    assert reader is not None
    searcher = reader.index.searcher()
    found = searcher.search(query, limit=max(max_results, 1), count=True, offset=start)
    pks = ft._pks(searcher, [a for _, a in found.hits[:max_results]])
    a = arxiv_search
    rows = {
        r.pk: r
        for r in conn.execute(sa.select(a.papers.c.pk, *a._COLUMNS).where(a.papers.c.pk.in_(pks)))
    }
    entries = tuple(a._entry(rows[pk]) for pk in pks if pk in rows)
    total = min(int(getattr(found, "count", 0) or 0), MAX_REACH)
    return ArxivPage(entries, total, start)


RUNNERS: dict[str, Callable[..., ArxivPage]] = {
    LEGACY: legacy_run_query,
    WINDOW: run_query,
    INDEX: index_run_query,
}


@contextmanager
def design(name: str) -> Iterator[None]:
    """/api/query served by one design for the block (the route calls its module's name)."""
    from app.web.api import arxiv_query as route

    saved = route.run_query
    route.run_query = RUNNERS[name]
    try:
        yield
    finally:
        route.run_query = saved


# --- the quality guard -------------------------------------------------------------------


@dataclass
class Check:
    store: str
    case: str
    design: str
    total_before: int
    total_after: int
    same_total: bool
    same_ids: bool | None  # None: over arXiv's reach, only the totals compared
    top_kept: float  # share of the legacy top 10 still in the top 10

    @property
    def ok(self) -> bool:
        return self.same_total and self.same_ids is not False


def every_id(runner: Callable[..., ArxivPage], conn: sa.Connection, node: Node) -> list[str]:
    out: list[str] = []
    while True:
        page = runner(conn, node, start=len(out), max_results=MAX_PAGE)
        out += [e.arxiv_id for e in page.entries]
        if not page.entries or len(out) >= page.total:
            return out


def check(s: Store, case: Case) -> list[Check]:
    """Each new design against `legacy_run_query` on one search case."""
    node = parse_search_query(case.query["search_query"])
    assert node is not None
    out = []
    with settings_env(s.env), s.engine.connect() as conn:
        before = legacy_run_query(conn, node, max_results=TOP)
        old = set(every_id(legacy_run_query, conn, node)) if before.total < MAX_REACH else None
        for name in (WINDOW, INDEX):
            runner = RUNNERS[name]
            after = runner(conn, node, max_results=TOP)
            same: bool | None = None
            if old is not None:
                new = every_id(runner, conn, node)
                same = len(new) == len(set(new)) and set(new) == old
            top_old = {e.arxiv_id for e in before.entries}
            top_new = {e.arxiv_id for e in after.entries}
            kept = len(top_old & top_new) / len(top_old) if top_old else 1.0
            out.append(
                Check(
                    s.name,
                    case.name,
                    name,
                    before.total,
                    after.total,
                    before.total == after.total,
                    same,
                    kept,
                )
            )
    return out


# --- timing -------------------------------------------------------------------------------


@dataclass
class Row:
    store: str
    case: str
    design: str
    n: int
    p50_ms: float
    p95_ms: float
    statuses: list[int] = field(default_factory=list)


def p50_p95(ms: Sequence[float]) -> tuple[float, float]:
    if not ms:
        return 0.0, 0.0
    xs = sorted(ms)
    return statistics.median(xs), xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def timed_calls(call: Callable[[], list[int]], repeat: int) -> tuple[list[float], list[int]]:
    ms: list[float] = []
    statuses: set[int] = set()
    for _ in range(repeat):
        forget_results()
        t = time.perf_counter()
        statuses.update(call())
        ms.append((time.perf_counter() - t) * 1000)
    return ms, sorted(statuses)


def measure(s: Store, client: TestClient, cases: Sequence[Case], repeat: int) -> list[Row]:
    rows: list[Row] = []
    for case in cases:
        calls: list[tuple[str, Callable[[], list[int]]]] = []
        if case.ours is not None:
            calls.append((BASELINE, partial(_get, client, [f"{BASELINE}?{urlencode(case.ours)}"])))
        elif "id_list" in case.query:
            paths = [f"/api/v1/papers/{i}" for i in case.query["id_list"].split(",")]
            calls.append(("/api/v1/papers/{id} x50", partial(_get, client, paths)))
        url = f"/api/query?{urlencode(case.query)}"
        for name in DESIGNS:
            calls.append((name, partial(_in_design, client, url, name)))
        for name, call in calls:
            call()  # warm: the index opened, the statement cached
            ms, statuses = timed_calls(call, repeat)
            rows.append(Row(s.name, case.name, name, len(ms), *p50_p95(ms), statuses))
        log(
            f"{s.name} / {case.name}: "
            + ", ".join(f"{r.design} {r.p50_ms:.1f}" for r in rows[-len(calls) :])
        )
    return rows


def _get(client: TestClient, paths: Sequence[str]) -> list[int]:
    return [client.get(path).status_code for path in paths]


def _in_design(client: TestClient, url: str, name: str) -> list[int]:
    with design(name):
        return [client.get(url).status_code]


# --- stores and tables ----------------------------------------------------------------------


@contextmanager
def site(s: Store) -> Iterator[TestClient]:
    from app.main import create_app

    env = {
        **s.env,
        "PAPERSHELF_RATE_LIMIT_PER_MINUTE": "0",
        "PAPERSHELF_ALLOWED_HOSTS": "testserver",
    }
    with settings_env(env), TestClient(create_app()) as client:
        yield client


def sample_ids(s: Store, n: int) -> list[str]:
    """`n` ids spread over the store, half of them with a version suffix."""
    with s.engine.connect() as conn:
        ids = list(conn.scalars(sa.select(arxiv_search.papers.c.arxiv_id).order_by("pk")))
    step = max(1, len(ids) // n)
    picked = ids[::step][:n]
    return [f"{a}v1" if i % 2 else a for i, a in enumerate(picked)]


def run_store(s: Store, repeat: int) -> tuple[list[Row], list[Check]]:
    cases = [*CASES, id_list_case(sample_ids(s, ID_LIST))]
    # One check per query (the date-order and deep-page cases repeat a query).
    queries: dict[str, Case] = {}
    for case in cases:
        if case.searches:
            queries.setdefault(case.query["search_query"], case)
    checks = [c for case in queries.values() for c in check(s, case)]
    with site(s) as client:
        rows = measure(s, client, cases, repeat)
    return rows, checks


def print_tables(rows: Sequence[Row], checks: Sequence[Check], repeat: int) -> None:
    print(f"\nLatency: one call (p50 / p95 of {repeat}); x base: p50 over the baseline's")
    print(
        f"{'store':<22}{'case':<18}{'design':<26}{'p50 ms':>9}{'p95 ms':>9}{'x base':>8}"
        f"{'x before':>10}  status"
    )
    for r in rows:
        base = next(
            (b for b in rows if (b.store, b.case) == (r.store, r.case) and b.design not in DESIGNS),
            None,
        )
        before = next(
            (b for b in rows if (b.store, b.case, b.design) == (r.store, r.case, LEGACY)), None
        )
        x_base = f"{r.p50_ms / base.p50_ms:>8.2f}" if base and r.design in DESIGNS else f"{'-':>8}"
        x_before = (
            f"{r.p50_ms / before.p50_ms:>10.2f}"
            if before and r.design == WINDOW and before.p50_ms
            else f"{'-':>10}"
        )
        print(
            f"{r.store:<22}{r.case:<18}{r.design:<26}{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}"
            f"{x_base}{x_before}  {','.join(map(str, r.statuses))}"
        )
    print(f"\nQuality guard: each design vs {LEGACY!r} (totals; ids over every page)")
    print(
        f"{'store':<22}{'case':<18}{'design':<20}{'total':>8}{'after':>8}{'ids':>7}"
        f"{'top 10 kept':>13}  verdict"
    )
    for c in checks:
        ids = "-" if c.same_ids is None else "same" if c.same_ids else "DIFF"
        print(
            f"{c.store:<22}{c.case:<18}{c.design:<20}{c.total_before:>8}{c.total_after:>8}"
            f"{ids:>7}{c.top_kept:>13.0%}  {'ok' if c.ok else 'FAILED'}"
        )


def guard_ok(checks: Sequence[Check]) -> bool:
    """The shipped design's guard (the index design is reported, not required)."""
    return all(c.ok for c in checks if c.design == WINDOW)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="2,000 papers, SQLite, 2 repeats")
    ap.add_argument("--real", type=int, default=None, help="real papers (default all)")
    ap.add_argument("--repeat", type=int, default=None, help="calls per case (default 7)")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    repeat = args.repeat or (2 if args.quick else 7)
    limit = args.real or (2000 if args.quick else None)
    data = find_data()
    rows: list[Row] = []
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="papershelf-bench-arxiv-") as tmp:
        work = Path(tmp)
        source = data / FILE
        lines: list[bytes] = []
        if limit:
            lines = read_lines(source, limit)
            source = work / "papers.jsonl.gz"
            with gzip.open(source, "wb", compresslevel=1) as fh:
                fh.writelines(lines)
        targets: list[tuple[str, Path]] = []
        d = work / "sqlite"
        targets.append((f"sqlite:///{d / 'papers.db'}", d))
        admin = None if args.quick or args.skip_postgres else pg_admin_url()
        for url_or_none in [None, admin] if admin else [None]:
            with _store_url(url_or_none, targets[0]) as (url, d):
                s = make_store(url, d, source, lines, ())
                got, guard = run_store(s, repeat)
                rows += got
                checks += guard
                s.engine.dispose()
                shutil.rmtree(d, ignore_errors=True)
    print_tables(rows, checks, repeat)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": [asdict(r) for r in rows], "checks": [asdict(c) for c in checks]},
                indent=2,
            )
        )
    ok = guard_ok(checks)
    print(f"\nquality guard: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


@contextmanager
def _store_url(admin: str | None, sqlite: tuple[str, Path]) -> Iterator[tuple[str, Path]]:
    if admin is None:
        yield sqlite
        return
    with postgres_url(admin) as url:
        yield url, sqlite[1].with_name("postgres")


if __name__ == "__main__":
    sys.exit(main())
