"""Queueing embedding jobs for the ML pool without its code: the fetch pool asks for a day's
embeddings right after storing it, ahead of the day's TL;DRs and the back catalogue, only
where an ML worker can take them; `papershelf reindex --embeddings` queues the back-fill,
newest first, or computes it here with --inline, showing its progress either way;
`papershelf reindex --vectors` rebuilds the vector index."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from arq import create_pool
from arq.connections import ArqRedis
from sqlalchemy import Engine

from app.artifacts import embeddings
from app.cli import reindex as reindex_cli
from app.db.engine import make_engine
from app.jobs import embeddings as embedding_jobs
from app.jobs import summaries as tldr_jobs
from app.jobs.connections import redis_settings
from app.jobs.queueing import scoped_job_id
from app.settings import Settings
from tests.fakes.arxiv_server import FakeArxiv
from tests.workers.test_fetch import DAY, paper
from tests.workers.test_summary_jobs import (
    cli_env,  # noqa: F401  (a fixture)
    fetch_day,
    ml_jobs_queued,
    queued_now,
    run,
)


@pytest.fixture
def settings(
    fake_arxiv: FakeArxiv, sqlite_engine: Engine, tmp_path: Path, redis_key: str
) -> Settings:
    """Three papers in the day's cs.CL feed, and an ML queue of this test's own."""
    fake_arxiv.feed_day = DAY
    fake_arxiv.add_papers([paper(i) for i in range(1, 4)])
    return fake_arxiv.settings(
        database_url=sqlite_engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        categories=["cs.CL"],
        fetch_queue=f"papershelf-test:fetch:{uuid.uuid4().hex}",
        ml_queue=redis_key,  # its jobs and keys are deleted after the test
    )


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()


@pytest.fixture
def no_ml_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding_jobs, "embedder_installed", lambda: False)


@pytest.mark.anyio
async def test_no_ml_pool_no_embedding_jobs(
    settings: Settings, pool: ArqRedis, redis_url: str, no_ml_extra: None
) -> None:
    result = await fetch_day(pool, settings, redis_url, "a")
    assert result["inserted"] == 3 and result["embeddings_queued"] is False
    assert await pool.zcard(settings.ml_queue) == 0


@pytest.mark.anyio
async def test_the_days_embeddings_are_queued_before_its_tldrs(
    settings: Settings, pool: ArqRedis, redis_url: str, no_ml_extra: None
) -> None:
    # An ML worker elsewhere announced its embedder and its summarizer.
    await pool.set(embedding_jobs.embedder_key(settings), "emb-1", ex=60)
    await pool.set(tldr_jobs.model_key(settings), "tldr-1", ex=60)
    result = await fetch_day(pool, settings, redis_url, "a")
    assert result["embeddings_queued"] is True and result["summaries_queued"] is True
    queued = await ml_jobs_queued(pool, settings)
    # Lowest score first: the pool takes the embeddings first.
    assert [(f, a) for f, a, _s in sorted(queued.values(), key=lambda q: q[2])] == [
        ("embed_listing", (DAY.isoformat(), "cs.CL")),
        ("summarize_listing", (DAY.isoformat(), "cs.CL")),
    ]
    _f, _a, score = queued[scoped_job_id(settings, f"emb:cs.CL:{DAY}:3", "ml")]
    # Ahead of any back-catalogue job queued now (see app.jobs.summaries).
    assert score < (datetime.now(UTC) - timedelta(days=300)).timestamp() * 1000
    # Fetching the same list again asks for nothing new: the requests collapse.
    again = await fetch_day(pool, settings, redis_url, "b")
    assert again["embeddings_queued"] is False and len(await ml_jobs_queued(pool, settings)) == 2


@pytest.mark.anyio
async def test_the_ml_extra_here_is_a_taker(
    settings: Settings, pool: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`papershelf up` starts an ML worker wherever the embedder can run."""
    monkeypatch.setattr(embedding_jobs, "embedder_installed", lambda: True)
    assert await embedding_jobs.embeddings_enabled(pool, settings)
    monkeypatch.setattr(embedding_jobs, "embedder_installed", lambda: False)
    assert not await embedding_jobs.embeddings_enabled(pool, settings)


# --- the CLI ----------------------------------------------------------------------------


class TinyEmbedder:
    """Unit vectors that depend on the title only; enough for the CLI."""

    version = "tiny-1"
    backend = "fake"

    def embed(self, papers: list[tuple[str, str]]) -> object:
        import numpy as np

        out = np.zeros((len(papers), 384), dtype=np.float32)
        for i, (title, _abstract) in enumerate(papers):
            out[i, hash(title) % 384] = 1.0
        return out


@pytest.fixture
def tiny_embedder(monkeypatch: pytest.MonkeyPatch) -> Iterator[TinyEmbedder]:
    """`reindex --embeddings --inline` loads this instead of the real model."""
    from workers.ml import models

    tiny = TinyEmbedder()
    monkeypatch.setattr(embedding_jobs, "embedder_installed", lambda: True)
    monkeypatch.setattr(models, "load_embedder", lambda _settings: tiny)
    yield tiny


def stored_models(settings: Settings) -> dict[str, str]:
    engine = make_engine(settings.database_url_resolved)
    try:
        with engine.connect() as conn:
            return {
                r.arxiv_id: r.model_version for r in conn.execute(embeddings.embeddings_t.select())
            }
    finally:
        engine.dispose()


def test_reindex_embeddings_queues_the_back_fill_newest_first(
    cli_env: Settings,  # noqa: F811
    no_ml_extra: None,
) -> None:
    result = run("reindex", "--embeddings")
    assert result.exit_code == 0, result.output
    assert "10 papers lack a current embedding (no ML worker has announced" in result.output
    # PAPERSHELF_EMBEDDINGS_BATCH_SIZE 128 by default: one job holds them all.
    assert "queued 1 embed_ids job of up to 1024 papers" in result.output
    assert "the jobs wait in the queue" in result.output  # nobody can take them yet
    queued = queued_now(cli_env)
    assert [f for f, _a, _s in queued] == ["embed_ids"]
    assert queued[0][1][0][:3] == ["2607.00010", "2607.00009", "2607.00008"]  # newest first
    assert queued[0][2] > (datetime.now(UTC) - timedelta(minutes=5)).timestamp() * 1000

    # Once an ML worker has announced its embedder, the note goes; a limit is one job.
    with redis.Redis.from_url(cli_env.redis_url or "") as client:
        client.set(embedding_jobs.embedder_key(cli_env), "emb-1", ex=60)
    counted = run("reindex", "--embeddings", "--limit", "3")
    assert "10 papers lack a current embedding from emb-1" in counted.output
    assert "queued 1 embed_ids job of" in counted.output
    assert "the jobs wait in the queue" not in counted.output


def test_reindex_embeddings_inline_shows_progress_without_a_terminal(
    cli_env: Settings,  # noqa: F811
    tiny_embedder: TinyEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAPERSHELF_EMBEDDINGS_BATCH_SIZE", "4")
    monkeypatch.setattr(reindex_cli, "PLAIN_EVERY_S", 0.0)  # a line per batch
    from app.settings import get_settings

    get_settings.cache_clear()
    result = run("reindex", "--embeddings", "--inline", "--limit", "7")
    assert result.exit_code == 0, result.output
    # Not a terminal (a log, a pipe): plain lines with steps, rate and time left.
    lines = [x for x in result.output.splitlines() if x.startswith("embeddings: ")]
    assert lines[0].startswith("embeddings: 4/7 papers (57%), ")
    assert "papers/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("embeddings: 7/7 papers (100%), ")
    assert "7 papers lacked a current embedding from tiny-1 (fake); 7 written" in result.output
    assert set(stored_models(cli_env).values()) == {"tiny-1"}

    again = run("reindex", "--embeddings", "--inline")
    assert "3 papers lacked a current embedding" in again.output
    assert len(stored_models(cli_env)) == 10


def test_reindex_options_that_do_not_go_together(cli_env: Settings) -> None:  # noqa: F811
    both = run("reindex", "--embeddings", "--summaries")
    assert both.exit_code == 1 and "run one at a time" in both.output
    assert run("reindex", "--vectors", "--embeddings").exit_code == 1
    inline = run("reindex", "--vectors", "--inline")
    assert inline.exit_code == 1 and "--embeddings" in inline.output


def test_reindex_vectors_rebuilds_the_index(
    cli_env: Settings,  # noqa: F811
    tiny_embedder: TinyEmbedder,
) -> None:
    empty = run("reindex", "--vectors")
    assert empty.exit_code == 0, empty.output
    assert "no paper has an embedding yet" in empty.output
    assert run("reindex", "--embeddings", "--inline").exit_code == 0
    result = run("reindex", "--vectors")
    assert result.exit_code == 0, result.output
    assert "vector index rebuilt: 10 papers, 384 dimensions" in result.output
    assert "vector index: 10/10 vectors (100%)" in result.output
