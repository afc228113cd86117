"""Web benchmark: the real server under load against a bare route of the same framework, in
one run.

    python -m bench.web            # ~50k real papers, 5 s per route
    python -m bench.web --quick    # smoke run: a 5k subset, 2 s per route (< 1 minute)
    python -m bench.web --json out.json

The site runs as `python -m app.cli serve` in a subprocess on 127.0.0.1 (rate limit off),
on a temporary data dir filled once with `python -m app.cli import`. The baseline is a tiny
FastAPI app served by uvicorn with the same settings, whose one route returns a fixed page
of exactly the size of the day listing; it is measured before, between and after the site's
routes, and the median of the three is the baseline, because absolute rates drift on a
shared machine.

Load: `wrk` when installed, else an async httpx client with a fixed number of keep-alive
connections for a fixed time per route. Latencies include client time (the client shares
the machine's cores with the server), so the ratios matter more than absolute figures.

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
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
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
GOALS = {"listing": 0.5, "listing 304": 0.9}
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


def serve_bare(port: int, size: int) -> None:
    import uvicorn

    # The same call as `papershelf serve` (app/cli/serve.py): uvicorn.run with its defaults.
    uvicorn.run(make_bare_app(size), host=HOST, port=port)


# --- subprocesses ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def child_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env["PAPERSHELF_DATA_DIR"] = str(data_dir)
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


def import_papers(lines: list[bytes], data_dir: Path, work: Path) -> float:
    src = work / "papers.jsonl.gz"
    with gzip.open(src, "wb", compresslevel=1) as fh:
        fh.writelines(lines)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "import", str(src)],
        cwd=ROOT,
        env=child_env(data_dir),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: import failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def embed_papers(data_dir: Path) -> str:
    """Store the cached real embeddings (bench.vectors) of the imported papers and build
    the vector index, so [Related] runs by embedding; "keywords" when there is no cache."""
    from app.db.engine import make_engine
    from app.vectors import VectorIndex
    from bench.related import store_embeddings
    from bench.vectors import CACHE_FILE, cache_dir

    if not (cache_dir() / CACHE_FILE).exists():
        print("bench: no cached embeddings: [Related] by keywords", file=sys.stderr)
        return "keywords"
    engine = make_engine(f"sqlite:///{data_dir / 'papershelf.db'}")
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


def _wrk_load(
    wrk: str, base: str, path: str, headers: dict[str, str], connections: int, duration: float
) -> tuple[int, float, dict[str, float], Counter[int]]:
    argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run([*argv, base + path], capture_output=True, text=True, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    secs = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for q, val, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[q] = float(val) * _WRK_UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    statuses: Counter[int] = Counter({0: int(non2xx.group(1))} if non2xx else {})
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
        # wrk asks for one URL; every route then runs under the same tool as the baseline.
        paths = paths[:1]
        first = httpx.get(base + paths[0], headers=headers, timeout=30)
        reqs, secs, lat, statuses = _wrk_load(wrk, base, paths[0], headers, connections, duration)
        statuses[first.status_code] += reqs - sum(statuses.values())
        # wrk prints percentiles only; keep them as a two-point list for pct().
        wire = first.num_bytes_downloaded
        res = Result(name, paths[0], connections, secs, reqs, [], statuses, wire)
        res.tool = "wrk"
        res.extra = {"p50_ms": lat.get("50"), "p99_ms": lat.get("99")}
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
    resp = httpx.get(f"{base}/api/v1/days", params={"category": "cs.CL", "limit": 1000})
    resp.raise_for_status()
    days = resp.json()["days"]
    if not days:
        raise SystemExit("bench: no cs.CL days in the imported data")
    best = min(days, key=lambda d: abs(d["papers"] - TARGET_DAY_PAPERS))
    return best["day"], best["papers"]


# --- main --------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 5k papers, 2 s per route")
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    ap.add_argument("--papers", type=int, default=None, help="import only the first N papers")
    ap.add_argument("--duration", type=float, default=None, help="seconds per route")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--no-wrk", action="store_true", help="use the httpx client even with wrk")
    ap.add_argument("--serve-bare", type=int, metavar="SIZE", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.port, args.serve_bare)
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
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="papershelf-web-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        data_dir.mkdir()
        try:
            import_s = import_papers(lines, data_dir, work)
            print(f"bench: imported {len(lines):,} papers in {import_s:.1f} s", file=sys.stderr)
            related_method = embed_papers(data_dir)
            site = Server(
                "papershelf serve",
                [sys.executable, "-m", "app.cli", "serve", "--host", HOST],
                child_env(data_dir),
                work / "site.log",
            )
            servers.append(site)
            site.wait_ready("/healthz")
            day, day_papers = pick_day(site.url)
            listing = f"/arxiv/cs.CL?date={day}"
            first = httpx.get(site.url + listing, headers=IDENTITY, timeout=60)
            if first.status_code != 200:
                raise SystemExit(f"bench: {listing} answered {first.status_code}")
            size = len(first.content)
            etag = first.headers.get("etag")

            bare = Server(
                "bare route",
                [sys.executable, "-m", "bench.web", "--serve-bare", str(size)],
                child_env(data_dir),
                work / "bare.log",
            )
            servers.append(bare)
            bare.wait_ready("/")
            assert len(httpx.get(bare.url + "/").content) == size

            def run(name: str, base: str, paths: list[str], **kw: Any) -> Result:
                return measure(
                    name,
                    base,
                    paths,
                    duration=duration,
                    connections=kw.pop("connections", conns),
                    use_wrk=use_wrk,
                    **kw,
                )

            word = words[0]
            results = [run("bare route (before)", bare.url, ["/"])]
            results.append(run("listing", site.url, [listing]))
            results.append(run("listing, gzip", site.url, [listing], headers=GZIP))
            results.append(
                run(
                    "listing 304",
                    site.url,
                    [listing],
                    headers={"If-None-Match": etag or '"no-etag-on-pages"'},
                )
            )
            results.append(run("paper page", site.url, [f"/arxiv/{i}" for i in ids]))
            results.append(
                run("paper page, gzip", site.url, [f"/arxiv/{i}" for i in ids], headers=GZIP)
            )
            results.append(
                run(f"related ({related_method})", site.url, [f"/arxiv/{i}/related" for i in ids])
            )
            results.append(run("bare route (middle)", bare.url, ["/"]))
            results.append(run("search page", site.url, [f"/search?q={w}" for w in words]))
            # The broad query: two common words matching thousands of papers.
            results.append(run("broad search", site.url, ["/search?q=diffusion+model"]))
            results.append(
                run("search page, gzip", site.url, [f"/search?q={w}" for w in words], headers=GZIP)
            )
            results.append(run("api search", site.url, [f"/api/v1/search?q={w}" for w in words]))
            results.append(
                run(
                    "api search, gzip",
                    site.url,
                    [f"/api/v1/search?q={w}" for w in words],
                    headers=GZIP,
                )
            )
            # One connection: the latency of a search alone, without queueing behind others.
            results.append(
                run(
                    "search page, 1 conn",
                    site.url,
                    [f"/search?q={w}" for w in words],
                    connections=1,
                )
            )
            results.append(
                run(
                    "api search, 1 conn",
                    site.url,
                    [f"/api/v1/search?q={w}" for w in words],
                    connections=1,
                )
            )
            results.append(run("bare route (after)", bare.url, ["/"]))
        finally:
            for s in reversed(servers):
                s.stop()

    bares = [r for r in results if r.route.startswith("bare route")]
    bare_rps = statistics.median(r.rps for r in bares)
    notes: dict[str, list[str]] = {r.route: [] for r in results}
    if not etag:
        notes["listing 304"].append("no ETag on pages")
    for name, goal in GOALS.items():
        r = next(r for r in results if r.route == name)
        ok = r.rps / bare_rps >= goal
        notes[name].append(f"goal >= {goal}x bare: {'met' if ok else 'MISSED'}")
    listing_rps = next(r.rps for r in results if r.route == "listing")
    broad = next(r for r in results if r.route == "broad search")
    ok = broad.rps >= BROAD_SEARCH_GOAL * listing_rps
    notes["broad search"].append(
        f"{broad.rps / listing_rps:.2f}x the listing's req/s "
        f"(goal >= {BROAD_SEARCH_GOAL}x: {'met' if ok else 'MISSED'})"
    )
    for r in results:
        if r.route.startswith(("search", "api search")):
            ok = p50(r) < SEARCH_P50_GOAL_MS
            notes[r.route].append(
                f"goal p50 < {SEARCH_P50_GOAL_MS:.0f} ms: {'met' if ok else 'MISSED'}"
            )
        bad = {s: n for s, n in r.statuses.items() if s not in (200, 304)}
        if bad:
            notes[r.route].append(f"other statuses {bad}")
        if r.route == "listing 304":
            notes[r.route].append(f"statuses {dict(r.statuses)}")

    print(
        f"\n{len(lines):,} papers; cs.CL on {day}: {day_papers} papers, page {size:,} bytes; "
        f"ETag {'yes' if etag else 'none'}; search words e.g. {word!r}; "
        f"{conns} connections, {duration:g} s per route; load by "
        f"{results[1].tool}; bare = median of {len(bares)} runs"
    )
    for r in results:
        plain = next((p for p in results if p.route == r.route.removesuffix(", gzip")), None)
        if r.route.endswith(", gzip") and plain is not None and plain.rps:
            notes[r.route].append(
                f"{r.bytes_per_response / max(1, plain.bytes_per_response):.0%} of the bytes, "
                f"{r.rps / plain.rps:.2f}x the req/s of uncompressed"
            )
    print(
        f"{'route':<22} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>9} "
        f"{'vs bare':>8}  notes"
    )
    for r in results:
        ratio = f"{r.rps / bare_rps:.2f}" if r.connections == conns else "-"
        print(
            f"{r.route:<22} {r.connections:>5} {r.rps:>8,.0f} {p50(r):>8.1f} {p99(r):>8.1f} "
            f"{r.bytes_per_response:>9,} {ratio:>8}  {'; '.join(notes[r.route])}",
            flush=True,
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "papers": len(lines),
                    "import_s": round(import_s, 2),
                    "listing_day": day,
                    "listing_day_papers": day_papers,
                    "page_bytes": size,
                    "etag_on_pages": bool(etag),
                    "duration_s": duration,
                    "bare_rps": round(bare_rps, 1),
                    "goals": {
                        **{f"{k}_vs_bare_min": v for k, v in GOALS.items()},
                        "search_p50_ms_max": SEARCH_P50_GOAL_MS,
                        "broad_search_vs_listing_min": BROAD_SEARCH_GOAL,
                    },
                    "routes": [
                        {
                            "route": r.route,
                            "url": r.url,
                            "tool": r.tool,
                            "connections": r.connections,
                            "seconds": round(r.seconds, 3),
                            "requests": r.requests,
                            "rps": round(r.rps, 1),
                            "p50_ms": round(p50(r), 2),
                            "p99_ms": round(p99(r), 2),
                            "ratio_vs_bare": round(r.rps / bare_rps, 3)
                            if r.connections == conns
                            else None,
                            "response_bytes": r.bytes_per_response,
                            "statuses": {str(k): v for k, v in r.statuses.items()},
                            "notes": notes[r.route],
                            **{k: v for k, v in r.extra.items() if not k.startswith("p")},
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("bench: interrupted (servers stopped)")
