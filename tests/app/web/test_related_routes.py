"""The [Related] page and API: related cards, 404s, the not-built-yet note, and which
method (embedding or keywords) produced the list.

The app includes `app.web.related.router` before the pages router, as app.main must
(the pages router's `/arxiv/{rest:path}` would otherwise answer `/arxiv/{id}/related`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.artifacts import related as rel
from app.db import store
from app.db.models import Paper
from app.vectors import VectorIndex
from app.web import api, pages
from app.web import related as related_web
from app.web.pages.cache import PageCache
from app.web.templating import TEMPLATES, install_filters
from tests.app.artifacts.test_related import records
from tests.app.vectors.conftest import T0, unit, write_vectors

EVIL = '<script>alert("x")</script> protein folding'


def make_app(engine: Engine, vectors: Path) -> FastAPI:
    app = FastAPI()
    app.state.vector_index = VectorIndex(vectors, check_every=0)
    app.include_router(related_web.router)
    app.include_router(api.router)
    app.include_router(pages.router)
    install_filters(TEMPLATES.env)
    app.state.engine = engine
    app.state.page_cache = PageCache()
    return app


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    recs = records()
    recs[1].title = EVIL  # 2601.00002, the protein twin
    with engine.begin() as conn:
        store.upsert_papers(conn, recs)
    return engine


@pytest.fixture
def client(seeded: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(make_app(seeded, tmp_path / "vectors")) as c:
        yield c


@pytest.fixture
def built(seeded: Engine, client: TestClient) -> TestClient:
    with seeded.begin() as conn:
        rel.build(conn)
    return client


def test_page_before_build_says_run_reindex(client: TestClient) -> None:
    r = client.get("/arxiv/2601.00001/related")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "run papershelf reindex" in r.text
    assert "Protein folding with diffusion models" in r.text


def test_page_lists_related_cards(built: TestClient) -> None:
    r = built.get("/arxiv/2601.00001v2/related")
    assert r.status_code == 200, r.text[:300]
    assert "run papershelf reindex" not in r.text
    cards = re.findall(r'<article class="paper" id="([^"]+)"', r.text)
    assert cards and cards[0] == "2601.00002"
    assert "2601.00001" not in cards
    assert "<script>alert" not in r.text  # titles are escaped
    assert 'href="/arxiv/2601.00002/related">[Related]</a>' in r.text
    assert "Keywords:" in r.text
    assert "Related by shared keywords" in r.text


def test_page_errors_are_html(built: TestClient) -> None:
    r = built.get("/arxiv/2601.09999/related")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Unknown paper" in r.text
    old_style = built.get("/arxiv/hep-th/9901001/related")  # the id holds a slash
    assert old_style.status_code == 404 and "hep-th/9901001" in old_style.text
    bad = built.get("/arxiv/not-an-id/related")
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("text/html")


def test_api_related(built: TestClient) -> None:
    r = built.get("/api/v1/papers/2601.00003/related")
    assert r.status_code == 200
    body = r.json()
    assert body and body[0]["arxiv_id"] == "2601.00004"
    assert set(body[0]) == {"arxiv_id", "title", "score", "method"}
    assert body[0]["method"] == "keywords"
    assert r.headers["x-related-method"] == "keywords"
    assert body[0]["title"] == "Message passing in graph neural networks"
    assert all(isinstance(x["score"], float) for x in body)
    assert len(built.get("/api/v1/papers/2601.00003/related?limit=1").json()) == 1


def test_api_errors(client: TestClient) -> None:
    r = client.get("/api/v1/papers/2601.09999/related")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert "2601.09999" in r.json()["error"]["message"]
    bad = client.get("/api/v1/papers/nonsense/related")
    assert bad.status_code == 400
    assert set(bad.json()["error"]) == {"code", "message"}
    # Before a build a known paper has no related papers yet: an empty list, not an error.
    assert client.get("/api/v1/papers/2601.00001/related").json() == []


@pytest.fixture
def embedded(seeded: Engine, client: TestClient) -> TestClient:
    """Keywords built, and embeddings for the two protein papers and the two graph papers
    (the graph-survey 2601.00008 shares keywords with them but has no vector)."""
    with seeded.begin() as conn:
        rel.build(conn)
    ids = ["2601.00001", "2601.00002", "2601.00003", "2601.00004"]
    topic = np.array([[4.0] + [0.0] * 15] * 2 + [[0.0, 4.0] + [0.0] * 14] * 2)
    vecs = unit(topic + np.random.default_rng(3).random((4, 16)) * 0.5)
    write_vectors(seeded, ids, vecs, at=T0, version=None)
    return client


def test_page_by_embedding_says_so(embedded: TestClient) -> None:
    r = embedded.get("/arxiv/2601.00003/related")
    assert r.status_code == 200
    assert "Related by the meaning of their titles and abstracts" in r.text
    assert "Keywords:" not in r.text
    cards = re.findall(r'<article class="paper" id="([^"]+)"', r.text)
    assert cards[0] == "2601.00004" and "2601.00003" not in cards


def test_api_by_embedding_and_fallback(embedded: TestClient) -> None:
    r = embedded.get("/api/v1/papers/2601.00001/related?limit=3")
    body = r.json()
    assert r.headers["x-related-method"] == "embedding"
    assert [x["method"] for x in body] == ["embedding"] * 3
    assert body[0]["arxiv_id"] == "2601.00002"
    assert body[0]["score"] > body[1]["score"]
    assert embedded.get("/api/v1/papers/2601.00001/related?blend=true").status_code == 200
    # A paper without a vector: the keyword list, said so.
    survey = embedded.get("/api/v1/papers/2601.00008/related")
    assert survey.headers["x-related-method"] == "keywords"
    assert survey.json() and survey.json()[0]["method"] == "keywords"
    page = embedded.get("/arxiv/2601.00008/related")
    assert "Related by shared keywords" in page.text


def test_page_is_validated_and_served_again_until_its_papers_change(
    embedded: TestClient, seeded: Engine
) -> None:
    first = embedded.get("/arxiv/2601.00003/related")
    etag = first.headers["etag"]
    again = embedded.get("/arxiv/2601.00003/related")
    assert again.text == first.text and again.headers["etag"] == etag
    assert again.headers["x-related-method"] == "embedding"
    assert (
        embedded.get("/arxiv/2601.00003/related", headers={"If-None-Match": etag}).status_code
        == 304
    )
    # A listed paper changes (a new title): the page is rendered anew.
    with seeded.begin() as conn:
        conn.execute(
            sa.update(Paper.__table__)
            .where(Paper.__table__.c.arxiv_id == "2601.00004")
            .values(title="Renamed graph paper", changed_at=datetime.now(UTC))
        )
    changed = embedded.get("/arxiv/2601.00003/related", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and "Renamed graph paper" in changed.text
    assert changed.headers["etag"] != etag
