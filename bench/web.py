"""Web benchmark: the real server under load against a bare route of the same framework, in
one run.

    python -m bench.web            # ~50k real papers, 5 s per route
    python -m bench.web --quick    # smoke run: a 5k subset, 2 s per route (< 1 minute)
    python -m bench.web --json out.json
    python -m bench.web --workers 2 --connections 16   # site and bare app, 2 processes each
    python -m bench.web --scaling  # listing req/s with 1 and with 2 workers, same run
    python -m bench.web --postgres # the same routes from PostgreSQL too, as a ratio to SQLite

The site runs as `python -m app.cli serve --workers N` in a subprocess on 127.0.0.1 (rate
limit off), on a temporary data dir filled once with `python -m app.cli import`. The
baseline is a tiny FastAPI app served by uvicorn with the same settings and the same number
of workers, whose one route returns a fixed page of exactly the size of the day listing; it
is measured before, between and after the site's routes, and the median of the three is the
baseline, because absolute rates drift on a shared machine.

`--postgres` imports the same papers into a fresh PostgreSQL database (created on the
server of `PAPERSHELF_TEST_POSTGRES_URL`, default 127.0.0.1:5432, dropped at the end),
serves it the same way and runs the same routes: each is reported as PostgreSQL's req/s
over SQLite's.

Load: `wrk` when installed (a Lua script walks a route's URLs in turn), else an async
httpx client with a fixed number of keep-alive connections for a fixed time per route.
Latencies include client time (the client shares the machine's cores with the server), so
the ratios matter more than absolute figures.

Compression: every run asks for `Accept-Encoding: identity` except the `… gzip` runs, which
ask for `gzip` (as browsers do); the table's `bytes` column is what one response took on the
wire, so the same route with and without compression shows both the saving and its CPU cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.ingest import find_data, read_lines

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("arxiv") / "papers_cs_2025-08-05_2026-07-01.jsonl.gz"
HOST = "127.0.0.1"
TARGET_DAY_PAPERS = 200
GOALS = {"listing": 0.6, "listing 304": 0.9}
#: The latest-day listing (no date in the URL) and its 304 against the same page and 304
#: asked for by its date, measured one after the other: the latest day must cost ~nothing.
LATEST_GOALS = {
    "latest listing": "latest listing, dated",
    "latest listing 304": "latest listing 304, dated",
}
LATEST_GOAL = 0.9
#: Listing req/s with two workers against one (`--scaling`).
SCALING_GOAL = 1.6
#: PostgreSQL's req/s against SQLite's, per route (`--postgres`): within 1.5x.
POSTGRES_GOAL = 1 / 1.5
#: The routes the PostgreSQL goal covers: listings, paper pages and the API.
POSTGRES_GOAL_ROUTES = (
    "listing",
    "listing 304",
    "latest listing",
    "paper page",
    "api listing",
    "api paper",
    "api papers",
    "api search",
)
IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}
SEARCH_P50_GOAL_MS = 20.0
#: A broad query (`diffusion model`) against the cached day listing, same run.
BROAD_SEARCH_GOAL = 0.25


# --- the baseline app --------------------------------------------------------------------


def make_bare_app(size: int):  # type: ignore[no-untyped-def]
    """One route returning a pre-rendered HTML page of `size` bytes."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    head = b"<!doctype html><html><body><pre>"
    tail = b"</pre></body></html>"
    body = (head + b"x" * max(0, size - len(head) - len(tail)) + tail)[:size]
    assert len(body) == size
    app = FastAPI()

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(body)

    return app


BARE_SIZE_ENV = "BENCH_WEB_BARE_SIZE"


def bare_app_from_env():  # type: ignore[no-untyped-def]
    """The bare app of `BENCH_WEB_BARE_SIZE` bytes (uvicorn's factory, in every worker)."""
    return make_bare_app(int(os.environ[BARE_SIZE_ENV]))


def serve_bare(port: int, size: int, workers: int = 1) -> None:
    import uvicorn

    # As `papershelf serve` (app/cli/serve.py) calls it: an import string, so that uvicorn
    # can start `workers` processes, with its defaults otherwise.
    os.environ[BARE_SIZE_ENV] = str(size)
    uvicorn.run("bench.web:bare_app_from_env", factory=True, host=HOST, port=port, workers=workers)


# --- subprocesses ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def child_env(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env["PAPERSHELF_DATA_DIR"] = str(data_dir)
    if database_url:
        env["PAPERSHELF_DATABASE_URL"] = database_url
    env["PAPERSHELF_RATE_LIMIT_PER_MINUTE"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the bench dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """A server subprocess in its own process group; `stop()` ends the whole group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = log
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(
                [*argv, "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def wait_ready(self, path: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"bench: {self.name} did not start (exit {self.proc.poll()}):\n{tail}")

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the server's processes (its process group: uvicorn's
        workers too), from /proc; None where there is no /proc."""
        total = 0
        try:
            stats = list(Path("/proc").glob("[0-9]*/stat"))
        except OSError:
            return None
        if not stats:
            return None
        for stat in stats:
            try:
                # The fields after the command name (which may hold spaces): state is 3rd.
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # ended meanwhile
            if int(fields[2]) == self.proc.pid:  # pgrp
                total += int(fields[11]) + int(fields[12])  # utime + stime, in ticks
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def import_papers(
    lines: list[bytes], data_dir: Path, work: Path, database_url: str | None = None
) -> float:
    src = work / "papers.jsonl.gz"
    if not src.exists():
        with gzip.open(src, "wb", compresslevel=1) as fh:
            fh.writelines(lines)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "import", str(src)],
        cwd=ROOT,
        env=child_env(data_dir, database_url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: import failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def embed_papers(data_dir: Path, database_url: str | None = None) -> str:
    """Store the cached real embeddings (bench.vectors) of the imported papers and build
    the vector index, so [Related] runs by embedding; "keywords" when there is no cache."""
    from app.db.engine import make_engine
    from app.vectors import VectorIndex
    from bench.related import store_embeddings
    from bench.vectors import CACHE_FILE, cache_dir

    if not (cache_dir() / CACHE_FILE).exists():
        print("bench: no cached embeddings: [Related] by keywords", file=sys.stderr)
        return "keywords"
    engine = make_engine(database_url or f"sqlite:///{data_dir / 'papershelf.db'}")
    stored = store_embeddings(engine)
    VectorIndex(data_dir / "vectors").build(engine)
    engine.dispose()
    print(f"bench: stored and indexed {stored:,} embeddings", file=sys.stderr)
    return "embedding"


# --- load --------------------------------------------------------------------------------


@dataclass
class Result:
    route: str
    url: str
    connections: int
    seconds: float
    requests: int
    latencies_ms: list[float]
    statuses: Counter[int]
    bytes_per_response: int = 0
    tool: str = "httpx"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        if q == 0.5:
            return statistics.median(xs)
        return xs[min(len(xs) - 1, int(len(xs) * q))]


async def _httpx_load(
    base: str, paths: list[str], headers: dict[str, str], connections: int, duration: float
) -> tuple[int, float, list[float], Counter[int], int]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    size = 0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        # Warm-up: open the connections and let the server's caches settle (not timed).
        for i in range(min(len(paths), 4) * connections):
            await client.get(paths[i % len(paths)], headers=headers)
        counter = iter(range(1 << 62))
        start = time.perf_counter()
        stop_at = start + duration

        async def worker() -> None:
            nonlocal size
            while (now := time.perf_counter()) < stop_at:
                path = paths[next(counter) % len(paths)]
                # The body as it came (not decoded): a browser's gunzip is not the server's
                # work, and here it would take the server's cores.
                async with client.stream("GET", path, headers=headers) as resp:
                    wire = 0
                    async for chunk in resp.aiter_raw():
                        wire += len(chunk)
                latencies.append((time.perf_counter() - now) * 1000)
                statuses[resp.status_code] += 1
                size = wire

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    return len(latencies), elapsed, latencies, statuses, size


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _wrk_script(paths: list[str]) -> str:
    """A wrk Lua script asking for `paths` in turn (URL paths: plain ASCII)."""
    listed = ", ".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{{listed}}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n"
        "  return wrk.format(nil, paths[(i - 1) % #paths + 1])\n"
        "end\n"
    )


def _wrk_load(
    wrk: str,
    base: str,
    paths: list[str],
    headers: dict[str, str],
    connections: int,
    duration: float,
) -> tuple[int, float, dict[str, float], Counter[int]]:
    argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-web-") as script:
        if len(paths) > 1:
            script.write(_wrk_script(paths))
            script.flush()
            argv += ["-s", script.name]
        done = subprocess.run([*argv, base + paths[0]], capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = done.stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    secs = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for q, val, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[q] = float(val) * _WRK_UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    statuses: Counter[int] = Counter({0: int(non2xx.group(1))} if non2xx else {})
    # The load generator's own CPU: on a small machine it takes cores the servers lack.
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    lat["client_cores"] = cpu / secs if secs else 0.0
    return reqs, secs, lat, statuses


def measure(
    name: str,
    base: str,
    paths: list[str],
    *,
    duration: float,
    connections: int,
    headers: dict[str, str] | None = None,
    use_wrk: bool = True,
) -> Result:
    # Uncompressed unless the run asks otherwise (httpx would ask for gzip by default).
    headers = {**IDENTITY, **(headers or {})}
    wrk = shutil.which("wrk") if use_wrk else None
    if wrk:
        first = httpx.get(base + paths[0], headers=headers, timeout=30)
        reqs, secs, lat, statuses = _wrk_load(wrk, base, paths, headers, connections, duration)
        # wrk counts only what is not 2xx/3xx: the rest answered as the first one did.
        statuses[first.status_code] += reqs - sum(statuses.values())
        # wrk prints percentiles only; keep them as a two-point list for pct().
        wire = first.num_bytes_downloaded
        res = Result(name, paths[0], connections, secs, reqs, [], statuses, wire)
        res.tool = "wrk"
        res.extra = {
            "p50_ms": lat.get("50"),
            "p99_ms": lat.get("99"),
            "client_cores": round(lat["client_cores"], 2),
        }
    else:
        reqs, secs, lats, statuses, size = asyncio.run(
            _httpx_load(base, paths, headers, connections, duration)
        )
        res = Result(name, paths[0], connections, secs, reqs, lats, statuses, size)
    if len(paths) > 1:
        res.extra["distinct_urls"] = len(paths)
    print(
        f"bench: {name}: {res.rps:,.0f} req/s, p50 {p50(res):.1f} ms, statuses {dict(statuses)}",
        file=sys.stderr,
        flush=True,
    )
    return res


def add(results: list[Result], r: Result) -> None:
    """Append `r`, or fold it into an earlier run of the same route: requests and seconds
    add up (so req/s is over both), percentiles are the mean of both runs'."""
    earlier = next((e for e in results if e.route == r.route), None)
    if earlier is None:
        results.append(r)
        return
    earlier.requests += r.requests
    earlier.seconds += r.seconds
    earlier.statuses.update(r.statuses)
    earlier.latencies_ms += r.latencies_ms
    for key in ("p50_ms", "p99_ms", "client_cores"):
        if earlier.extra.get(key) is not None and r.extra.get(key) is not None:
            earlier.extra[key] = (earlier.extra[key] + r.extra[key]) / 2
    earlier.extra["runs"] = earlier.extra.get("runs", 1) + 1


def p50(r: Result) -> float:
    return r.extra["p50_ms"] if r.tool == "wrk" else r.pct(0.5)


def p99(r: Result) -> float:
    return r.extra["p99_ms"] if r.tool == "wrk" else r.pct(0.99)


# --- picking what to ask for -------------------------------------------------------------


def title_words(lines: list[bytes], n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words: list[str] = []
    for line in rng.sample(lines, min(len(lines), n * 3)):
        title = orjson.loads(line)["title"]
        candidates = [w for w in title.split() if w.isalpha() and len(w) > 4]
        if candidates:
            words.append(rng.choice(candidates).lower())
    return words[:n]


def pick_day(base: str) -> tuple[str, int]:
    """The cs.CL day whose paper count (as the site counts it) is nearest 200."""
    days = cs_cl_days(base)
    best = min(days, key=lambda d: abs(d["papers"] - TARGET_DAY_PAPERS))
    return best["day"], best["papers"]


def cs_cl_days(base: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{base}/api/v1/days", params={"category": "cs.CL", "limit": 1000})
    resp.raise_for_status()
    days: list[dict[str, Any]] = resp.json()["days"]
    if not days:
        raise SystemExit("bench: no cs.CL days in the imported data")
    return days


@dataclass
class Targets:
    """What the routes ask for, read from the first site once (the same papers everywhere)."""

    day: str
    day_papers: int
    latest_day: str
    ids: list[str]
    words: list[str]

    @property
    def listing(self) -> str:
        return f"/arxiv/cs.CL?date={self.day}"

    @property
    def latest(self) -> str:
        return "/arxiv/cs.CL"

    @property
    def latest_dated(self) -> str:
        return f"/arxiv/cs.CL?date={self.latest_day}"


def find_targets(base: str, ids: list[str], words: list[str]) -> Targets:
    day, papers = pick_day(base)
    latest = max(d["day"] for d in cs_cl_days(base))
    return Targets(day, papers, latest, ids, words)


def etag_of(base: str, path: str) -> str | None:
    resp = httpx.get(base + path, headers=IDENTITY, timeout=60)
    if resp.status_code != 200:
        raise SystemExit(f"bench: {path} answered {resp.status_code}")
    return resp.headers.get("etag")


Route = tuple[str, list[str], dict[str, str], int | None]


def site_routes(base: str, t: Targets, related_method: str) -> list[Route]:
    """(name, paths, headers, connections or None for the run's) for every site route, in
    the order measured; `middle` marks where the bare route runs again."""
    etag = etag_of(base, t.listing) or '"no-etag-on-pages"'
    latest_etag = etag_of(base, t.latest) or '"no-etag-on-pages"'
    pages = [f"/arxiv/{i}" for i in t.ids]
    searches = [f"/search?q={w}" for w in t.words]
    # Pairs of two different words, 1,225 queries for each "uncached" row (one ordering
    # each), so a query is not asked again before the cache has dropped it.
    pairs = [(a, b) for i, a in enumerate(t.words) for b in t.words[i + 1 :]]
    random.Random(5).shuffle(pairs)
    distinct = [f"/search?q={a}+{b}" for a, b in pairs]
    distinct_1 = [f"/search?q={b}+{a}" for a, b in pairs]
    api_searches = [f"/api/v1/search?q={w}" for w in t.words]
    return [
        ("listing", [t.listing], {}, None),
        ("listing, gzip", [t.listing], GZIP, None),
        ("listing 304", [t.listing], {"If-None-Match": etag}, None),
        # Each latest-day row beside its dated twin, twice in A B B A order (one row each in
        # the table): the two differ by a few per cent at most, less than this machine drifts.
        ("latest listing", [t.latest], {}, None),
        ("latest listing, dated", [t.latest_dated], {}, None),
        ("latest listing, dated", [t.latest_dated], {}, None),
        ("latest listing", [t.latest], {}, None),
        ("latest listing 304", [t.latest], {"If-None-Match": latest_etag}, None),
        ("latest listing 304, dated", [t.latest_dated], {"If-None-Match": latest_etag}, None),
        ("latest listing 304, dated", [t.latest_dated], {"If-None-Match": latest_etag}, None),
        ("latest listing 304", [t.latest], {"If-None-Match": latest_etag}, None),
        ("paper page", pages, {}, None),
        ("paper page, gzip", pages, GZIP, None),
        (f"related ({related_method})", [f"/arxiv/{i}/related" for i in t.ids], {}, None),
        ("middle", [], {}, None),
        ("api listing", [f"/api/v1/listings/cs.CL?date={t.day}"], {}, None),
        ("api paper", [f"/api/v1/papers/{i}" for i in t.ids], {}, None),
        ("api papers", ["/api/v1/papers?category=cs.CL&limit=50"], {}, None),
        # Repeated queries (each of the 50 words over and over) are answered from the
        # search-page cache once rendered; the "uncached" rows ask each URL once.
        ("search page", searches, {}, None),
        ("search page, uncached", distinct, {}, None),
        # The broad query: two common words matching thousands of papers, as a
        # popular query (repeated) and, with a parameter the route ignores, never cached.
        ("broad search", ["/search?q=diffusion+model"], {}, None),
        (
            "broad search, uncached",
            [f"/search?q=diffusion+model&n={i}" for i in range(20_000)],
            {},
            None,
        ),
        ("search page, gzip", searches, GZIP, None),
        ("api search", api_searches, {}, None),
        ("api search, gzip", api_searches, GZIP, None),
        # One connection: the latency of a search alone, without queueing behind others.
        ("search page, 1 conn", searches, {}, 1),
        ("search page, uncached, 1 conn", distinct_1, {}, 1),
        ("api search, 1 conn", api_searches, {}, 1),
    ]


def start_site(name: str, data_dir: Path, log: Path, workers: int, url: str | None) -> Server:
    site = Server(
        name,
        [sys.executable, "-m", "app.cli", "serve", "--host", HOST, "--workers", str(workers)],
        child_env(data_dir, url),
        log,
    )
    site.wait_ready("/healthz")
    return site


def start_bare(size: int, data_dir: Path, log: Path, workers: int) -> Server:
    bare = Server(
        "bare route",
        [
            sys.executable,
            "-m",
            "bench.web",
            "--serve-bare",
            str(size),
            "--workers",
            str(workers),
        ],
        child_env(data_dir),
        log,
    )
    bare.wait_ready("/")
    assert len(httpx.get(bare.url + "/").content) == size
    return bare


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, dropped afterwards."""
    import psycopg

    from bench.ingest import pg_admin_url

    admin = pg_admin_url()
    if admin is None:
        raise SystemExit("bench: --postgres needs PostgreSQL (PAPERSHELF_TEST_POSTGRES_URL)")
    name = f"papershelf_bench_web_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def analyze(url: str) -> float:
    """ANALYZE the fresh database: the planner's statistics, which autovacuum gathers a
    minute or so after a bulk load where it runs (the import itself does not). Without
    them PostgreSQL guesses row counts and, e.g., sorts all of a category's papers for
    `/api/v1/papers?category=…` instead of walking the date index."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return time.perf_counter() - start


# --- reporting ---------------------------------------------------------------------------


def print_table(
    results: list[Result],
    notes: dict[str, list[str]],
    ref_rps: float,
    conns: int,
    ref_name: str = "vs bare",
) -> None:
    print(
        f"{'route':<26} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>9} "
        f"{ref_name:>8}  notes"
    )
    for r in results:
        ratio = f"{r.rps / ref_rps:.2f}" if r.connections == conns and ref_rps else "-"
        print(
            f"{r.route:<26} {r.connections:>5} {r.rps:>8,.0f} {p50(r):>8.1f} {p99(r):>8.1f} "
            f"{r.bytes_per_response:>9,} {ratio:>8}  {'; '.join(notes.get(r.route, []))}",
            flush=True,
        )


def route_json(r: Result, ref_rps: float | None, notes: list[str]) -> dict[str, Any]:
    return {
        "route": r.route,
        "url": r.url,
        "tool": r.tool,
        "connections": r.connections,
        "seconds": round(r.seconds, 3),
        "requests": r.requests,
        "rps": round(r.rps, 1),
        "p50_ms": round(p50(r), 2),
        "p99_ms": round(p99(r), 2),
        "ratio_vs_bare": round(r.rps / ref_rps, 3) if ref_rps else None,
        "response_bytes": r.bytes_per_response,
        "statuses": {str(k): v for k, v in r.statuses.items()},
        "notes": notes,
        **{k: v for k, v in r.extra.items() if not k.startswith("p")},
    }


def site_notes(results: list[Result]) -> dict[str, list[str]]:
    """What every run's table says beside the figures: search goals, odd statuses, gzip."""
    notes: dict[str, list[str]] = {r.route: [] for r in results}
    by_name = {r.route: r for r in results}
    for r in results:
        if r.route.startswith(("search", "api search")):
            ok = p50(r) < SEARCH_P50_GOAL_MS
            notes[r.route].append(
                f"goal p50 < {SEARCH_P50_GOAL_MS:.0f} ms: {'met' if ok else 'MISSED'}"
            )
        bad = {s: n for s, n in r.statuses.items() if s not in (200, 304)}
        if bad:
            notes[r.route].append(f"other statuses {bad}")
        if r.route.endswith(" 304"):
            notes[r.route].append(f"statuses {dict(r.statuses)}")
        plain = by_name.get(r.route.removesuffix(", gzip"))
        if r.route.endswith(", gzip") and plain is not None and plain.rps:
            notes[r.route].append(
                f"{r.bytes_per_response / max(1, plain.bytes_per_response):.0%} of the bytes, "
                f"{r.rps / plain.rps:.2f}x the req/s of uncompressed"
            )
    listing = by_name.get("listing")
    for name in ("broad search", "broad search, uncached"):
        broad = by_name.get(name)
        if listing and broad and listing.rps:
            ok = broad.rps >= BROAD_SEARCH_GOAL * listing.rps
            notes[name].append(
                f"{broad.rps / listing.rps:.2f}x the listing's req/s "
                f"(goal >= {BROAD_SEARCH_GOAL}x: {'met' if ok else 'MISSED'})"
            )
    for name, ref_name in LATEST_GOALS.items():
        r, ref = by_name.get(name), by_name.get(ref_name)
        if r and ref and ref.rps:
            ok = r.rps >= LATEST_GOAL * ref.rps
            notes[name].append(
                f"{r.rps / ref.rps:.2f}x {ref_name!r} (goal >= {LATEST_GOAL}x: "
                f"{'met' if ok else 'MISSED'})"
            )
    return notes


# --- the runs ----------------------------------------------------------------------------


def scaling_run(run: Any, data_dir: Path, work: Path, servers: list[Server]) -> dict[str, Any]:
    """The listing (and its 304) and the bare route with one worker, then with two."""
    out: dict[str, Any] = {"results": []}
    t: Targets | None = None
    for workers in (1, 2):
        site = start_site(
            f"papershelf serve --workers {workers}",
            data_dir,
            work / f"site{workers}.log",
            workers,
            None,
        )
        servers.append(site)
        if t is None:
            t = find_targets(site.url, [], [])
        etag = etag_of(site.url, t.listing) or '"no-etag-on-pages"'
        size = len(httpx.get(site.url + t.listing, headers=IDENTITY, timeout=60).content)
        bare = start_bare(size, data_dir, work / f"bare{workers}.log", workers)
        servers.append(bare)
        for name, server, path, headers in (
            ("bare route", bare, "/", {}),
            ("listing", site, t.listing, {}),
            # A quarter of the bytes: less bound by copying them through loopback.
            ("listing, gzip", site, t.listing, GZIP),
            ("listing 304", site, t.listing, {"If-None-Match": etag}),
        ):
            cpu = server.cpu_seconds()
            r = run(
                f"{name}, {workers} worker{'s' if workers > 1 else ''}",
                server.url,
                [path],
                headers=headers,
            )
            used = server.cpu_seconds()
            r.extra["workers"] = workers
            if cpu is not None and used is not None and r.seconds:
                r.extra["server_cores"] = round((used - cpu) / r.seconds, 2)
            out["results"].append(r)
        site.stop()
        bare.stop()
    out["day"] = t.day if t else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 5k papers, 2 s per route")
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    ap.add_argument("--papers", type=int, default=None, help="import only the first N papers")
    ap.add_argument("--duration", type=float, default=None, help="seconds per route")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument(
        "--workers", type=int, default=1, help="processes of the site and of the bare app"
    )
    ap.add_argument(
        "--scaling",
        action="store_true",
        help="only the listing, its 304 and the bare route with 1 and with 2 workers",
    )
    ap.add_argument(
        "--postgres",
        action="store_true",
        help="also serve the papers from a fresh PostgreSQL database: PG/SQLite per route",
    )
    ap.add_argument("--no-wrk", action="store_true", help="use the httpx client even with wrk")
    ap.add_argument("--serve-bare", type=int, metavar="SIZE", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.workers < 1:
        ap.error("--workers must be at least 1")
    if args.serve_bare is not None:
        serve_bare(args.port, args.serve_bare, args.workers)
        return

    # A plain `kill` ends the run like Ctrl+C: the finally blocks stop the servers.
    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    limit = args.papers or (5000 if args.quick else None)
    duration = args.duration or (2.0 if args.quick else 5.0)
    conns = args.connections
    lines = read_lines(find_data() / DATA, limit)
    words = title_words(lines, 50)
    ids = [orjson.loads(line)["id"] for line in random.Random(3).sample(lines, 50)]
    use_wrk = not args.no_wrk

    def run(name: str, base: str, paths: list[str], **kw: Any) -> Result:
        return measure(
            name,
            base,
            paths,
            duration=duration,
            connections=kw.pop("connections", None) or conns,
            use_wrk=use_wrk,
            **kw,
        )

    servers: list[Server] = []
    pg_results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="papershelf-web-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        data_dir.mkdir()
        try:
            import_s = import_papers(lines, data_dir, work)
            print(f"bench: imported {len(lines):,} papers in {import_s:.1f} s", file=sys.stderr)
            if args.scaling:
                scaling = scaling_run(run, data_dir, work, servers)
                report_scaling(scaling, lines, conns, duration, args.json)
                return
            related_method = embed_papers(data_dir)
            site = start_site(
                f"papershelf serve --workers {args.workers}",
                data_dir,
                work / "site.log",
                args.workers,
                None,
            )
            servers.append(site)
            t = find_targets(site.url, ids, words)
            first = httpx.get(site.url + t.listing, headers=IDENTITY, timeout=60)
            size = len(first.content)
            etag = first.headers.get("etag")
            bare = start_bare(size, data_dir, work / "bare.log", args.workers)
            servers.append(bare)

            results = [run("bare route (before)", bare.url, ["/"])]
            for name, paths, headers, n in site_routes(site.url, t, related_method):
                if name == "middle":
                    results.append(run("bare route (middle)", bare.url, ["/"]))
                    continue
                add(results, run(name, site.url, paths, headers=headers, connections=n))
            results.append(run("bare route (after)", bare.url, ["/"]))
            site.stop()
            bare.stop()

            if args.postgres:
                with postgres_database() as url:
                    pg_dir = work / "data-pg"
                    pg_dir.mkdir()
                    pg_import_s = import_papers(lines, pg_dir, work, url)
                    print(
                        f"bench: imported {len(lines):,} papers into PostgreSQL in "
                        f"{pg_import_s:.1f} s",
                        file=sys.stderr,
                    )
                    pg_related = embed_papers(pg_dir, url)
                    analyze_s = analyze(url)
                    pg_site = start_site(
                        f"papershelf serve --workers {args.workers} (PostgreSQL)",
                        pg_dir,
                        work / "site-pg.log",
                        args.workers,
                        url,
                    )
                    servers.append(pg_site)
                    for name, paths, headers, n in site_routes(pg_site.url, t, pg_related):
                        if name != "middle":
                            add(
                                pg_results,
                                run(name, pg_site.url, paths, headers=headers, connections=n),
                            )
                    pg_site.stop()
        finally:
            for s in reversed(servers):
                s.stop()

    bares = [r for r in results if r.route.startswith("bare route")]
    bare_rps = statistics.median(r.rps for r in bares)
    notes = site_notes(results)
    if not etag:
        notes["listing 304"].append("no ETag on pages")
    for name, goal in GOALS.items():
        r = next(r for r in results if r.route == name)
        ok = r.rps / bare_rps >= goal
        notes[name].append(f"goal >= {goal}x bare: {'met' if ok else 'MISSED'}")

    print(
        f"\n{len(lines):,} papers; cs.CL on {t.day}: {t.day_papers} papers, page {size:,} "
        f"bytes; latest day {t.latest_day}; ETag {'yes' if etag else 'none'}; search words "
        f"e.g. {words[0]!r}; {conns} connections, {duration:g} s per route; "
        f"{args.workers} worker{'s' if args.workers > 1 else ''} (site and bare); load by "
        f"{results[1].tool}; bare = median of {len(bares)} runs"
    )
    print_table(results, notes, bare_rps, conns)

    pg_report: dict[str, Any] = {}
    if pg_results:
        sqlite_rps = {r.route: r.rps for r in results}
        pg_notes = site_notes(pg_results)
        vs: dict[str, float] = {}
        for r in pg_results:
            base_rps = sqlite_rps.get(r.route)
            if not base_rps:
                continue
            vs[r.route] = r.rps / base_rps
            if r.route in POSTGRES_GOAL_ROUTES or r.route.startswith("related"):
                ok = vs[r.route] >= POSTGRES_GOAL
                pg_notes[r.route].append(f"goal >= 1/1.5 of SQLite: {'met' if ok else 'MISSED'}")
        print(
            f"\nPostgreSQL, the same routes ({pg_import_s:.1f} s import, then ANALYZE "
            f"{analyze_s:.1f} s); vs SQLite = PG req/s over SQLite's in this run"
        )
        print(
            f"{'route':<26} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>9} "
            f"{'vs SQLite':>9}  notes"
        )
        for r in pg_results:
            ratio = f"{vs[r.route]:.2f}" if r.route in vs else "-"
            print(
                f"{r.route:<26} {r.connections:>5} {r.rps:>8,.0f} {p50(r):>8.1f} "
                f"{p99(r):>8.1f} {r.bytes_per_response:>9,} {ratio:>9}  "
                f"{'; '.join(pg_notes[r.route])}",
                flush=True,
            )
        pg_report = {
            "import_s": round(pg_import_s, 2),
            "analyze_s": round(analyze_s, 2),
            "goal_vs_sqlite_min": round(POSTGRES_GOAL, 3),
            "routes": [
                {
                    **route_json(r, None, pg_notes[r.route]),
                    "ratio_vs_sqlite": round(vs[r.route], 3) if r.route in vs else None,
                }
                for r in pg_results
            ],
        }

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "papers": len(lines),
                    "import_s": round(import_s, 2),
                    "workers": args.workers,
                    "listing_day": t.day,
                    "listing_day_papers": t.day_papers,
                    "latest_day": t.latest_day,
                    "page_bytes": size,
                    "etag_on_pages": bool(etag),
                    "duration_s": duration,
                    "bare_rps": round(bare_rps, 1),
                    "goals": {
                        **{f"{k}_vs_bare_min": v for k, v in GOALS.items()},
                        "latest_vs_dated_min": LATEST_GOAL,
                        "search_p50_ms_max": SEARCH_P50_GOAL_MS,
                        "broad_search_vs_listing_min": BROAD_SEARCH_GOAL,
                    },
                    "routes": [
                        route_json(r, bare_rps if r.connections == conns else None, notes[r.route])
                        for r in results
                    ],
                    **({"postgresql": pg_report} if pg_report else {}),
                },
                indent=2,
            )
        )


def report_scaling(
    scaling: dict[str, Any], lines: list[bytes], conns: int, duration: float, out: Path | None
) -> None:
    results: list[Result] = scaling["results"]
    by = {(r.route.rsplit(", ", 1)[0], r.extra["workers"]): r for r in results}
    ratios = {
        name: by[(name, 2)].rps / by[(name, 1)].rps
        for name in ("bare route", "listing", "listing, gzip", "listing 304")
        if (name, 2) in by and by[(name, 1)].rps
    }
    notes: dict[str, list[str]] = {r.route: [] for r in results}
    for r in results:
        if "server_cores" in r.extra:
            notes[r.route].append(f"server used {r.extra['server_cores']:.2f} cores")
        if "client_cores" in r.extra:
            notes[r.route].append(f"wrk {r.extra['client_cores']:.2f}")
    for name, ratio in ratios.items():
        two = by[(name, 2)].route
        notes[two].append(f"{ratio:.2f}x one worker")
        if name == "listing":
            ok = ratio >= SCALING_GOAL
            notes[two].append(f"goal >= {SCALING_GOAL}x: {'met' if ok else 'MISSED'}")
    print(
        f"\n{len(lines):,} papers; cs.CL on {scaling['day']}; {conns} connections, "
        f"{duration:g} s per route; {os.cpu_count()} CPUs shared by the servers and the load "
        f"generator; load by {results[0].tool}"
    )
    print(
        f"{'route':<26} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>9}  notes"
    )
    for r in results:
        print(
            f"{r.route:<26} {r.connections:>5} {r.rps:>8,.0f} {p50(r):>8.1f} {p99(r):>8.1f} "
            f"{r.bytes_per_response:>9,}  {'; '.join(notes[r.route])}",
            flush=True,
        )
    if out:
        out.write_text(
            json.dumps(
                {
                    "papers": len(lines),
                    "listing_day": scaling["day"],
                    "duration_s": duration,
                    "cpus": os.cpu_count(),
                    "goal_two_vs_one_worker_min": SCALING_GOAL,
                    "two_vs_one_worker": {k: round(v, 3) for k, v in ratios.items()},
                    "routes": [route_json(r, None, notes[r.route]) for r in results],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("bench: interrupted (servers stopped)")
