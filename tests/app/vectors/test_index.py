"""The vector index: build and search agree with an exact scan, rows written since a
build are found (once), a failed build leaves the old one serving, a second reader
picks up a new build, filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from app.vectors import VectorIndex
from app.vectors import index as vindex
from tests.app.vectors.conftest import N, add_papers, later, paper_id, unit, write_vectors


def exact(vectors: np.ndarray, q: np.ndarray, k: int, skip: set[int] | None = None) -> list[str]:
    """The k nearest by a full scan of the stored (float16) vectors."""
    skip = skip or set()
    stored = vectors.astype(np.float16).astype(np.float32)
    order = np.argsort(-(stored @ q), kind="stable")
    return [paper_id(int(i)) for i in order if int(i) not in skip][:k]


def reader(path: Path) -> VectorIndex:
    return VectorIndex(path, check_every=0)


@pytest.mark.parametrize("hnsw_min", [10_000, 0], ids=["exact", "hnsw"])
def test_build_and_search_agree_with_exact_scan(
    stored: Engine, vectors: np.ndarray, tmp_path: Path, hnsw_min: int
) -> None:
    index = reader(tmp_path / "vectors")
    status = index.build(stored, hnsw_min=hnsw_min, batch=64)
    assert status["count"] == N and status["dim"] == vectors.shape[1]
    assert status["hnsw"] is (hnsw_min == 0)
    overlap = []
    for i in range(0, N, 37):
        got = index.search(vectors[i], 10, exclude={paper_id(i)})
        want = exact(vectors, vectors[i], 10, {i})
        assert paper_id(i) not in [a for a, _ in got]
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        overlap.append(len({a for a, _ in got} & set(want)) / 10)
        if hnsw_min:  # the exact scan: same ids, float16-rounded cosines
            assert [a for a, _ in got] == want
            best = float(vectors[int(want[0][5:])] @ vectors[i])
            assert got[0][1] == pytest.approx(best, abs=2e-3)
    assert np.mean(overlap) >= 0.9


def test_rows_written_after_the_build_are_found(stored: Engine, tmp_path: Path) -> None:
    index = reader(tmp_path / "vectors")
    index.build(stored)
    new = paper_id(N + 1)
    add_papers(stored, [new])
    v = unit(np.arange(16, dtype=np.float32) - 7.5)
    write_vectors(stored, [new], v[None], at=later(1))
    with stored.connect() as conn:
        index.refresh(conn)
    assert index.status()["delta"] == 1
    assert index.search(v, 1)[0][0] == new
    assert index.vector(new) is not None


def test_a_re_embedded_paper_appears_once_with_its_new_vector(
    stored: Engine, vectors: np.ndarray, tmp_path: Path
) -> None:
    index = reader(tmp_path / "vectors")
    index.build(stored, hnsw_min=0)
    moved = paper_id(5)
    v = unit(-vectors[5])  # far from where it was
    write_vectors(stored, [moved], v[None], at=later(1), version=2)
    with stored.connect() as conn:
        index.refresh(conn)
    got = [a for a, _ in index.search(v, N)]
    assert got.count(moved) == 1
    assert got[0] == moved
    assert moved not in [a for a, _ in index.search(vectors[5], 5)]


def test_a_failed_build_leaves_the_old_index_serving(
    stored: Engine, vectors: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "vectors"
    first = reader(path).build(stored)
    before = reader(path)
    with stored.connect() as conn:
        before.refresh(conn)

    def killed(*_a: object, **_kw: object) -> None:
        raise KeyboardInterrupt  # the build dies half-way through writing its files

    monkeypatch.setattr(vindex, "_publish", killed)
    with pytest.raises(KeyboardInterrupt):
        reader(path).build(stored)
    monkeypatch.undo()
    (path / "tmp-stray").mkdir()  # what a SIGKILLed build leaves behind
    after = reader(path)
    with stored.connect() as conn:
        after.refresh(conn)
    assert after.status()["generation"] == first["generation"]
    assert after.search(vectors[3], 1)[0][0] == paper_id(3)
    reader(path).build(stored)  # the next build clears what the killed one left
    assert not list(path.glob("tmp-*"))


def test_a_second_reader_loads_a_new_build(stored: Engine, tmp_path: Path) -> None:
    path = tmp_path / "vectors"
    writer, other = reader(path), reader(path)
    writer.build(stored)
    with stored.connect() as conn:
        other.refresh(conn)
    first = other.status()["generation"]
    assert other.status()["count"] == N
    extra = [paper_id(N + i) for i in range(3)]
    add_papers(stored, extra)
    write_vectors(stored, extra, unit(np.ones((3, 16), dtype=np.float32)), at=later(1))
    writer.build(stored)
    with stored.connect() as conn:
        other.refresh(conn)
    assert other.status()["generation"] != first
    assert other.status()["count"] == N + 3


def test_reload_is_throttled(stored: Engine, tmp_path: Path) -> None:
    path = tmp_path / "vectors"
    slow = VectorIndex(path, check_every=3600)
    with stored.connect() as conn:
        slow.refresh(conn)  # the first look always happens
        reader(path).build(stored)
        slow.refresh(conn)  # within the interval: no new look
    assert not slow.status()["built"]
    assert slow.status()["delta"] == N  # before any build, the stored rows are the delta


@pytest.mark.parametrize("hnsw_min", [10_000, 0], ids=["exact", "hnsw"])
def test_filters(stored: Engine, vectors: np.ndarray, tmp_path: Path, hnsw_min: int) -> None:
    index = reader(tmp_path / "vectors")
    index.build(stored, hnsw_min=hnsw_min)
    q = vectors[0]
    allowed = {paper_id(i) for i in range(0, N, 3)}
    by_set = index.search(q, 10, allowed=allowed)
    assert len(by_set) == 10 and all(a in allowed for a, _ in by_set)
    assert [a for a, _ in by_set] == exact(vectors, q, 10, {i for i in range(N) if i % 3})
    by_pred = index.search(q, 10, allowed=lambda a: int(a[5:]) % 3 == 0)
    assert {a for a, _ in by_pred} <= allowed and len(by_pred) == 10
    rare = index.search(q, 10, allowed=lambda a: a == paper_id(N - 1))
    assert [a for a, _ in rare] == [paper_id(N - 1)]
    assert index.search(q, 5, allowed=set()) == []
    assert paper_id(0) not in [a for a, _ in index.search(q, 5, exclude=[paper_id(0)])]


def test_empty_and_bad_queries(engine: Engine, tmp_path: Path) -> None:
    index = reader(tmp_path / "vectors")
    with engine.connect() as conn:
        index.refresh(conn)
    assert not index.available
    assert index.search(np.ones(16), 5) == []
    status = index.build(engine)
    assert status["count"] == 0 and not index.available
    add_papers(engine, [paper_id(1)])
    write_vectors(engine, [paper_id(1)], unit(np.ones((1, 16))), at=later(1))
    with engine.connect() as conn:
        index.refresh(conn)
    with pytest.raises(ValueError, match="dimensions"):
        index.search(np.ones(8), 5)


def test_the_delta_is_folded_into_a_build_once_it_is_large(
    stored: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path, vectors_path=tmp_path / "vectors")
    monkeypatch.setattr(vindex, "DELTA_MIN", N + 1)
    # N stored vectors and no build: below the threshold, readers scan them exactly.
    assert vindex.rebuild_if_due(settings, stored) is None
    assert not (tmp_path / "vectors" / vindex.MANIFEST).exists()
    monkeypatch.setattr(vindex, "DELTA_MIN", N)
    built = vindex.rebuild_if_due(settings, stored)
    assert built is not None and built["count"] == N
    # Right after a build nothing is due; a tenth of the build written since is.
    assert vindex.rebuild_if_due(settings, stored) is None
    monkeypatch.setattr(vindex, "DELTA_MIN", 1)
    new = [paper_id(N + i) for i in range(1, N // 10 + 1)]
    add_papers(stored, new)
    write_vectors(stored, new, unit(np.ones((len(new), 16), dtype=np.float32)), at=later(1))
    again = vindex.rebuild_if_due(settings, stored)
    assert again is not None and again["count"] == N + len(new)


def test_rows_written_just_before_a_build_are_not_held_twice(
    engine: Engine, vectors: np.ndarray, tmp_path: Path
) -> None:
    """A back-fill writes its rows moments before the build (inside the clock margin): the
    build has them, so readers keep no delta and re-reads do not grow one; a rewrite of one
    of them afterwards is the delta's, once."""
    from datetime import UTC, datetime

    ids = [paper_id(i) for i in range(N)]
    add_papers(engine, ids)
    write_vectors(engine, ids, vectors, at=datetime.now(UTC))
    index = reader(tmp_path / "vectors")
    index.build(engine)
    with engine.connect() as conn:
        for _ in range(3):
            index.refresh(conn, force=True)
            assert index.status()["delta"] == 0
    write_vectors(engine, [ids[0]], vectors[1][None], at=later(1), version=2)
    with engine.connect() as conn:
        for _ in range(3):
            index.refresh(conn, force=True)
            assert index.status()["delta"] == 1
    got = index.search(vectors[1], 3)
    assert [a for a, _ in got].count(ids[0]) == 1


def test_rows_inside_the_clock_margin_are_not_read_again_once_held(
    engine: Engine, vectors: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a bulk write every row is inside the clock margin, so each pull used to
    read every vector again inside a request; once a reader holds them, a pull reads none
    until a row is added or rewritten, and then still finds it."""
    from datetime import UTC, datetime

    ids = [paper_id(i) for i in range(N)]
    add_papers(engine, ids)
    write_vectors(engine, ids, vectors, at=datetime.now(UTC))
    index = reader(tmp_path / "vectors")  # no build: every row is the delta
    with engine.connect() as conn:
        index.refresh(conn, force=True)
    assert index.status()["delta"] == N
    reads: list[object] = []
    real = vindex.stream_vectors

    def counted(conn, **kw):  # type: ignore[no-untyped-def]
        reads.append(kw)
        return real(conn, **kw)

    monkeypatch.setattr(vindex, "stream_vectors", counted)
    with engine.connect() as conn:
        for _ in range(3):
            index.refresh(conn, force=True)
    assert reads == []
    new = paper_id(N + 1)
    add_papers(engine, [new])
    v = unit(np.arange(16, dtype=np.float32) - 7.5)
    write_vectors(engine, [new], v[None], at=datetime.now(UTC))
    rewritten = unit(-vectors[7])
    write_vectors(engine, [ids[7]], rewritten[None], at=datetime.now(UTC), version=2)
    with engine.connect() as conn:
        index.refresh(conn, force=True)
    assert len(reads) == 1
    assert index.status()["delta"] == N + 1
    assert index.search(v, 1)[0][0] == new
    assert index.search(rewritten, 1)[0][0] == ids[7]
