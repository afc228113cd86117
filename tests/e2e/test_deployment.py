"""The several-process deployment end to end, as docker-compose runs it: a migration first,
then, as real processes on one PostgreSQL database and one Redis, two `papershelf serve`
web processes, one `serve --workers 2`, two fetch workers and the ML worker (a tiny trained
summarizer checkpoint on the data dir), against the fake arXiv.

The first day arrives the way a fresh deployment gets it (the fetch pool's start-up poll);
the second as an admin asks for it (the admin API on each web process, and the CLI), while
every web process has the first day's pages cached. What a reader and an admin would notice
is checked: each paper, category and announcement is stored once; arXiv saw one request at a
time, spaced by the interval, from both fetch workers; every web process (each of the
`--workers 2` pair on its own) serves the new day, finds a new paper by search, and shows a
TL;DR on every card."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, select

from app.cli.runtime.children import die_with_parent
from app.db import runs
from app.db.engine import make_engine
from app.db.models import Announcement, Paper, PaperCategory, PaperVersion, Summary
from tests.app.cli.test_serve import answering_alone, serve_workers
from tests.conftest import SHARED_DATA, need
from tests.e2e.conftest import REDIS_URL
from tests.fakes.arxiv_server import FakeArxiv, FakePaper, Request, announce_type
from tests.workers.test_politeness import max_in_flight

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "app.cli"]
# A Redis database of this test's own: the deployment's keys (the arXiv limiter, cron job ids,
# health keys, the queues) have fixed names, so nothing else may share it. Flushed before and
# after.
REDIS_DB = 13
TOKEN = "deployment-test-token"
INTERVAL = 0.5  # arXiv's 3 s between request starts, scaled down
# Scheduling noise between the limiter's decision (on Redis's clock) and the fake's stamp.
TOLERANCE = 0.9
CATEGORIES = ("cs.CL", "cs.LG")
DAY1, DAY2 = date(2026, 6, 29), date(2026, 6, 30)
REPLACED = "2606.00002"  # announced new on DAY1, replaced (v2) on DAY2
CONTACTS = {"fetch-a": "fetch-a@example.org", "fetch-b": "fetch-b@example.org"}
STARTUP_S = 120  # every process up (the ML worker imports torch and loads two models)
FETCH_S = 60  # a day's lists stored
ML_S = 120  # its TL;DRs written (the first job also prepares the embedder)
PAGE_S = 15  # a web process shows what is stored (its cached data version lives 2 s)


def paper(n: int, day: date) -> FakePaper:
    cats = [("cs.CL",), ("cs.LG",), ("cs.CL", "cs.LG"), ("cs.LG", "cs.CL")][n % 4]
    return FakePaper(
        arxiv_id=f"2606.{n:05d}",
        title=f"Deployment paper {n}: the wombat{n} method for tokenizers",
        abstract=f"We study the wombat{n} method for tokenizers. It works well on parsing.",
        authors=[f"Author {n}", "Second Author"],
        categories=list(cats),
        versions=[datetime.combine(day - timedelta(days=1), dtime(18), UTC)],
    )


def announce(fake: FakeArxiv, day: date, papers: list[FakePaper]) -> None:
    """Make `papers` the feeds of `day` (arXiv's feeds carry one day's list at a time)."""
    feeds: dict[str, list[tuple[str, str]]] = {}
    for p in papers:
        fake.papers[p.arxiv_id] = p
        for cat in p.categories:
            feeds.setdefault(cat, []).append((p.arxiv_id, announce_type(p, cat)))
    fake.feeds = feeds
    fake.feed_day = day


def expected_announcements(day: date, papers: list[FakePaper]) -> list[tuple[str, date, str]]:
    return [(cat, day, p.arxiv_id) for p in papers for cat in p.categories]


# --- processes -----------------------------------------------------------------------------


@dataclass
class Deployment:
    """Processes started as `papershelf …` commands, each in a process group of its own (so
    whatever one starts goes with it), told to stop if the test process dies, and logging to
    a file of its own."""

    logs: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *argv: str, **env: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [*CLI, *argv],
                cwd=ROOT,
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # even a killed test run leaves none behind
            )
        self.procs[name] = proc
        return proc

    def run(self, *argv: str) -> str:
        """A one-shot command (a migration, an admin's CLI call): its output, or a failure."""
        done = subprocess.run(
            [*CLI, *argv], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"papershelf {' '.join(argv)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def tails(self, chars: int = 2500) -> str:
        out = []
        for name in self.procs:
            text = (self.logs / f"{name}.log").read_text(errors="replace")
            out.append(f"--- {name} (last {chars} characters) ---\n{text[-chars:]}")
        return "\n".join(out)

    def wait(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll `check` until it returns something true; fail naming `what`, with the logs,
        on a timeout or as soon as any process has exited."""
        deadline = time.monotonic() + timeout
        while True:
            dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
            if dead:
                pytest.fail(f"{what}: process exited {dead}\n{self.tails()}")
            if value := check():
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.tails()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM every group at once, a bounded wait, then SIGKILL whatever is left."""
        for proc in self.procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    with FakeArxiv() as server:
        server.latency = 0.05  # a job holds its connection a little while, as on arXiv
        server.oai_page_size = 3
        yield server


@pytest.fixture
def deployment_redis() -> Iterator[str]:
    base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL
    url = f"{base}/{REDIS_DB}"
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
            client.flushdb()
    except redis.RedisError as exc:
        need(False, f"Redis not reachable at {url}: {exc.__class__.__name__}")
    yield url
    with redis.Redis.from_url(url) as client:
        client.flushdb()


@pytest.fixture
def summarizer_checkpoint(tmp_path: Path) -> Path:
    """A tiny trained summarizer where a deployment keeps it: under the data dir."""
    need(importlib.util.find_spec("torch") is not None, "the ML extra is not installed")
    need(SHARED_DATA.is_dir(), f"real data not found at {SHARED_DATA}")
    from ml.summarizer.train import train
    from tests.ml.test_summarizer import tiny_config

    ckpt = tmp_path / "data" / "models" / "summarizer"
    train(tiny_config(ckpt, SHARED_DATA, max_steps=2))
    return ckpt


@pytest.fixture
def deployment(
    tmp_path: Path, pg_url: str, deployment_redis: str, fake: FakeArxiv
) -> Iterator[Deployment]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
    env.update(
        PAPERSHELF_DATA_DIR=str(tmp_path / "data"),
        PAPERSHELF_DATABASE_URL=pg_url,
        PAPERSHELF_REDIS_URL=deployment_redis,
        PAPERSHELF_CATEGORIES=",".join(CATEGORIES),
        PAPERSHELF_ADMIN_TOKEN=TOKEN,
        PAPERSHELF_RATE_LIMIT_PER_MINUTE="0",  # the test polls the API
        PAPERSHELF_ARXIV_RSS_URL=fake.url,
        PAPERSHELF_ARXIV_API_URL=fake.api_url,
        PAPERSHELF_ARXIV_OAI_URL=fake.oai_url,
        PAPERSHELF_ARXIV_MIN_INTERVAL=str(INTERVAL),
        PAPERSHELF_ARXIV_MAX_CONNECTIONS="1",
        PAPERSHELF_ARXIV_TIMEOUT="10",
        PAPERSHELF_FETCH_PAGES_PER_JOB="1",  # a back-fill continues in new jobs, page by page
        PAPERSHELF_SUMMARIZER_DEVICE="cpu",
        PAPERSHELF_EMBEDDINGS_DEVICE="cpu",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Deployment(logs, env)
    try:
        yield running
    finally:
        running.stop()


# --- what the web processes show ------------------------------------------------------------


def cards(html: str) -> dict[str, str | None]:
    """The cards of a listing page: arXiv id → the model named on its TL;DR (None: no TL;DR).
    A paper carded twice fails."""
    found: dict[str, str | None] = {}
    for chunk in html.split('<article class="paper" id="')[1:]:
        arxiv_id = chunk.split('"', 1)[0]
        assert arxiv_id not in found, f"{arxiv_id} is on the page twice"
        tldr = re.search(r'<p class="tldr[^"]*" data-model="([^"]+)"[^>]*><strong>TL;DR:', chunk)
        found[arxiv_id] = tldr.group(1) if tldr else None
    return found


def keyword_hits(base: str, word: str) -> list[str]:
    r = httpx.get(f"{base}/api/v1/search", params={"q": word, "mode": "keyword"}, timeout=10)
    assert r.status_code == 200, r.text
    return [h["arxiv_id"] for h in r.json()["hits"]]


@dataclass
class Web:
    """One way into the site: a `serve` process, or one worker of a `serve --workers 2`
    answering alone (the other stopped for the moment)."""

    name: str
    base: str
    alone: int | None = None
    siblings: list[int] = field(default_factory=list)

    def ask(self, fn: Callable[[str], Any]) -> Any:
        if self.alone is None:
            return fn(self.base)
        with answering_alone(self.alone, self.siblings):
            return fn(self.base)


def get(path: str, **headers: str) -> Callable[[str], httpx.Response]:
    return lambda base: httpx.get(base + path, headers=headers, timeout=10)


def shows(web: Web, path: str, wanted: dict[str, str]) -> Callable[[], httpx.Response | None]:
    """A probe: `web`'s page at `path` shows exactly the cards `wanted` (id → TL;DR model)."""

    def probe() -> httpx.Response | None:
        r = web.ask(get(path))
        return r if r.status_code == 200 and cards(r.text) == wanted else None

    return probe


# --- the store ---------------------------------------------------------------------------


def rows(engine: Engine, *columns: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(*columns)))


def tldrs(engine: Engine) -> dict[str, tuple[str, int | None]]:
    """Stored TL;DRs: arXiv id → (model version, paper version)."""
    got = rows(engine, Summary.arxiv_id, Summary.model_version, Summary.paper_version)
    return {a: (m, v) for a, m, v in got}


def test_the_deployment_fetches_days_and_every_web_process_serves_them(
    deployment: Deployment,
    fake: FakeArxiv,
    pg_url: str,
    deployment_redis: str,
    summarizer_checkpoint: Path,
) -> None:
    from ml.summarizer import checkpoint

    model = checkpoint.read(summarizer_checkpoint).version
    day1 = [paper(n, DAY1) for n in range(1, 7)]
    day2 = [paper(n, DAY2) for n in range(7, 13)]
    announce(fake, DAY1, day1)
    engine = make_engine(pg_url)

    # As docker-compose does: the one-shot migration, then everything else at once.
    deployment.run("db", "upgrade")
    ports = {name: _free_port() for name in ("web-a", "web-b", "web-c")}
    for name, port in ports.items():
        extra = ["--workers", "2"] if name == "web-c" else []
        deployment.start(name, "serve", "--host", "127.0.0.1", "--port", str(port), *extra)
    workers = {
        name: deployment.start(
            name, "worker", "--pool", "fetch", PAPERSHELF_ARXIV_CONTACT=contact
        ).pid
        for name, contact in CONTACTS.items()
    }
    workers["ml"] = deployment.start("ml", "worker", "--pool", "ml").pid
    bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

    def ready(base: str) -> bool:
        try:
            return httpx.get(base + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    for name, base in bases.items():
        deployment.wait(lambda b=base: ready(b), STARTUP_S, f"{name} to be ready")
    host = socket.gethostname()
    with redis.Redis.from_url(deployment_redis) as client:
        for name, pid in workers.items():
            queue = "papershelf:ml" if name == "ml" else "papershelf:fetch"
            key = f"{queue}:health:{host}:{pid}"
            deployment.wait(lambda k=key: client.exists(k), STARTUP_S, f"{name} to poll")
    pair = deployment.wait(
        lambda: len(w := serve_workers(deployment.procs["web-c"].pid)) == 2 and w,
        STARTUP_S,
        "web-c's two worker processes",
    )
    webs = [
        Web("web-a", bases["web-a"]),
        Web("web-b", bases["web-b"]),
        *(Web(f"web-c[{pid}]", bases["web-c"], pid, pair) for pid in pair),
    ]

    # Day 1: the fetch pool's start-up poll fetches the lists a fresh install lacks.
    want1 = expected_announcements(DAY1, day1)
    deployment.wait(
        lambda: (
            rows(engine, Announcement.category, Announcement.day, Announcement.arxiv_id)
            == sorted(want1)
        ),
        FETCH_S,
        "day 1's lists to be stored",
    )
    deployment.wait(
        lambda: set(tldrs(engine)) == {p.arxiv_id for p in day1},
        ML_S,
        "day 1's TL;DRs",
    )
    cl1 = {p.arxiv_id: model for p in day1 if "cs.CL" in p.categories}
    latest, older = "/arxiv/cs.CL", f"/arxiv/cs.CL?date={DAY1}"
    etags: dict[tuple[str, str], str] = {}
    for web in webs:
        for path in (latest, older):
            page = deployment.wait(shows(web, path, cl1), PAGE_S, f"{web.name}: day 1 at {path}")
            assert 'rel="next"' not in page.text
            etags[web.name, path] = page.headers["etag"]
            # Cached and current: a revalidation costs nothing.
            again = web.ask(get(path, **{"If-None-Match": etags[web.name, path]}))
            assert again.status_code == 304
        assert web.ask(lambda b: keyword_hits(b, "wombat1")) == ["2606.00001"]
        assert web.ask(lambda b: keyword_hits(b, "wombat9")) == []  # not announced yet

    # Day 2, as an admin asks for it: each list once through the admin API (a second ask on
    # another web process collapses into the queued job), ids and a back-fill besides, so
    # both fetch workers have work at once.
    fake.papers[REPLACED].versions.append(datetime.combine(DAY1, dtime(18), UTC))
    announce(fake, DAY2, [*day2, fake.papers[REPLACED]])
    if 60 - time.time() % 60 < 3:  # a manual fetch's job id is per minute: stay inside one
        time.sleep(60 - time.time() % 60 + 0.1)

    def admin_fetch(web: Web, body: dict[str, Any]) -> str:
        r = httpx.post(
            f"{web.base}/api/v1/admin/fetch",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 202, r.text
        return str(r.json()["status"])

    web_a, web_b, web_c = webs[0], webs[1], webs[2]
    assert admin_fetch(web_a, {"category": "cs.CL"}) == "queued"
    assert admin_fetch(web_b, {"category": "cs.CL"}) == "already-queued"
    assert admin_fetch(web_b, {"category": "cs.LG"}) == "queued"
    for p in day2:
        assert admin_fetch(web_c, {"ids": [p.arxiv_id]}) == "queued"
    assert admin_fetch(web_a, {"ids": ["2606.00001", "2606.00003"]}) == "queued"
    out = deployment.run(
        "fetch", "cs.CL", "--from", str(DAY1 - timedelta(days=2)), "--until", str(DAY2)
    )
    assert "queued backfill" in out

    want2 = want1 + expected_announcements(DAY2, [*day2, fake.papers[REPLACED]])
    deployment.wait(
        lambda: (
            rows(engine, Announcement.category, Announcement.day, Announcement.arxiv_id)
            == sorted(want2)
        ),
        FETCH_S,
        "day 2's lists to be stored",
    )
    everyone = {p.arxiv_id: p for p in [*day1, *day2]}
    current = {a: (model, everyone[a].version) for a in everyone}
    deployment.wait(lambda: tldrs(engine) == current, ML_S, "day 2's TL;DRs (and v2's anew)")

    # Once every fetch job is through (the id look-ups and the back-fill run on after the
    # lists): each paper, version and category stored once, and no run failed.
    deployment.wait(
        lambda: harvest_done(engine, DAY1 - timedelta(days=2), DAY2) and not running_runs(engine),
        FETCH_S,
        "the id look-ups and the back-fill to finish",
    )
    assert rows(engine, Paper.arxiv_id) == sorted((a,) for a in everyone)
    assert rows(engine, PaperVersion.arxiv_id, PaperVersion.version) == sorted(
        (a, v) for a, p in everyone.items() for v in range(1, p.version + 1)
    )
    assert rows(engine, PaperCategory.arxiv_id, PaperCategory.category) == sorted(
        (a, c) for a, p in everyone.items() for c in p.categories
    )
    with engine.connect() as conn:
        records = runs.recent_runs(conn, limit=200)
    assert [(r["kind"], r["status"], r["error"]) for r in records if r["status"] != "ok"] == []
    assert rows(engine, Announcement.category, Announcement.day, Announcement.arxiv_id) == sorted(
        want2
    )

    # Every web process (each of web-c's pair on its own) shows day 2, with TL;DRs, instead
    # of the day 1 page it had cached, links day 1 to it, and finds the new papers.
    cl2 = {p.arxiv_id: model for p in [*day2, everyone[REPLACED]] if "cs.CL" in p.categories}
    for web in webs:
        page = deployment.wait(shows(web, latest, cl2), PAGE_S, f"{web.name}: day 2")
        assert page.headers["etag"] != etags[web.name, latest]
        revalidated = web.ask(get(latest, **{"If-None-Match": etags[web.name, latest]}))
        assert revalidated.status_code == 200 and cards(revalidated.text) == cl2
        page = deployment.wait(
            lambda w=web: (
                (r := w.ask(get(older))).status_code == 200
                and f'?date={DAY2}" rel="next"' in r.text
                and r
            ),
            PAGE_S,
            f"{web.name}: day 1's page linking to day 2",
        )
        assert cards(page.text) == cl1 and page.headers["etag"] != etags[web.name, older]
        assert web.ask(lambda b: keyword_hits(b, "wombat9")) == ["2606.00009"]
        assert web.ask(lambda b: keyword_hits(b, "wombat2")) == [REPLACED]
    assert serve_workers(deployment.procs["web-c"].pid) == pair, "web-c replaced a worker"

    # arXiv saw one request at a time, from both fetch workers, never closer than the interval.
    requests = sorted(fake.requests, key=lambda r: r.started)
    by = {contact: name for name, contact in CONTACTS.items()}
    senders = [by.get(_contact(r)) for r in requests]
    assert set(senders) == set(CONTACTS), f"requests came from {set(senders)}"
    assert max_in_flight(requests) == 1
    # A worker's first request also pays for lazy imports and a new connection after its
    # turn was granted, which shortens the gap to the next one: gaps after it are not
    # measured (as in tests/workers/test_politeness.py).
    firsts = {senders.index(name) for name in CONTACTS}
    gaps = [
        (requests[i + 1].started - requests[i].started, senders[i], senders[i + 1])
        for i in range(len(requests) - 1)
        if i not in firsts
    ]
    assert min(g for g, _, _ in gaps) >= TOLERANCE * INTERVAL, f"request start gaps: {gaps}"
    # The spacing held between the two workers, not only within each.
    assert any(a != b for _, a, b in gaps), f"no measured gap between the workers: {gaps}"


def _contact(request: Request) -> str:
    match = re.search(r"mailto:([^)\s]+)", request.headers.get("user-agent", ""))
    return match.group(1) if match else ""


def running_runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [r for r in runs.recent_runs(conn, limit=200) if r["status"] == "running"]


def harvest_done(engine: Engine, date_from: date, date_until: date) -> bool:
    with engine.connect() as conn:
        state = runs.get_harvest(conn, runs.harvest_key("cs:cs:CL", date_from, date_until))
    return bool(state and state.done)
