"""`VectorIndex`: the paper-embedding index on disk, its crash-safe rebuild from the
database, the exact "delta" of rows written since, and top-k search with filters.

Layout under the index directory (`vectors_dir(settings)`):

    manifest.json       which build is current, its watermark and parameters (replaced
                        atomically: a build is published only once complete)
    g<time>-<pid>/      one build: ids.npy (arxiv ids, one per row), sorted.npy/order.npy
                        (the ids sorted, to find a paper's row), matrix.npy (float16 rows,
                        unit length), stamps.npy (each row's `created_at` as built) and,
                        from HNSW_MIN rows, hnsw.usearch (a usearch HNSW graph over float16
                        vectors, keyed by row)
    build.lock          held while a build runs (one build at a time)

Readers memory-map the build, so several web processes share one copy in the page cache.
Rows written after the build (a `created_at` newer than its watermark, and not the stamp
the build holds for that paper) form the delta: read from the database by `refresh`, kept
in memory and scanned exactly at query time; a paper in the delta hides its older row in
the build, so a re-embedded paper never appears twice. A rebuild (`papershelf reindex
--vectors`, or the ML pool once the delta is large) folds the delta into a new build.

Why HNSW and not an exact scan (bench.vectors): an exact top-50 over 2.5M float16 rows
reads 1.9 GB per query (hundreds of ms); the HNSW graph answers in about a millisecond.
Why float16 and not int8 in the graph: on the 49,866 real vectors int8 held recall@50 at
0.94 against float16's 0.99, for 0.2 ms less a query. Below HNSW_MIN rows the exact scan is
fast and exact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from usearch.index import Index

from app.artifacts.embeddings import embeddings_t, papers, stamp, stream_vectors, written_since
from app.settings import Settings

MANIFEST = "manifest.json"
#: From this many rows a build gets an HNSW graph; below it search scans every row exactly.
HNSW_MIN = 20_000
#: HNSW parameters (bench.vectors measured these: recall@50 vs build time and latency).
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 128
QUANTIZATION = "f16"
#: An `allowed` id set up to this size is scored exactly (cost ~ its size); a larger one
#: filters the HNSW results, asking for more until k pass (cost ~ k / the share it allows).
EXACT_CANDIDATES = 20_000
#: The delta (rows since the build) that makes the ML pool fold it into a new build, at least.
DELTA_MIN = 5_000
#: How often (seconds) a reader looks for a new build and new rows, at most.
CHECK_EVERY = 5.0
# Writers stamp `created_at` with their own clock before they commit; rows committed late
# with an older stamp are still caught by re-reading this far back.
_CLOCK_MARGIN = timedelta(seconds=60)
_ID_DTYPE = "S32"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: A filter: a set of allowed arxiv ids, or a predicate over an id.
Allowed = Collection[str] | Callable[[str], bool]


def vectors_dir(settings: Settings) -> Path:
    """Where the index lives: `settings.vectors_path` when set, else data_dir/vectors."""
    override = settings.vectors_path
    return Path(override) if override else settings.data_dir / "vectors"


# --- one build, memory-mapped ------------------------------------------------------------


@dataclass(frozen=True)
class _Build:
    generation: str
    watermark: datetime
    ids: np.ndarray  # S32, row -> arxiv id
    sorted_ids: np.ndarray  # S32, ascending
    order: np.ndarray  # int64: sorted position -> row
    matrix: np.ndarray  # float16 (n, dim), memory-mapped
    stamps: np.ndarray  # int64 (n,): each row's `created_at` stamp when it was built
    hnsw: Index | None
    manifest: dict[str, Any]
    # The exact path's float32 rows, made on first use (small builds only).
    _dense: list[np.ndarray] = field(default_factory=list)

    @property
    def count(self) -> int:
        return int(self.ids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def dense(self) -> np.ndarray:
        if not self._dense:
            self._dense.append(np.asarray(self.matrix, dtype=np.float32))
        return self._dense[0]

    def rows_of(self, arxiv_ids: Collection[str]) -> np.ndarray:
        """Rows of the given ids that are in this build (int64)."""
        if not arxiv_ids or not self.count:
            return np.empty(0, dtype=np.int64)
        wanted = np.array([a.encode() for a in arxiv_ids], dtype=_ID_DTYPE)
        pos = np.searchsorted(self.sorted_ids, wanted)
        pos = np.minimum(pos, self.count - 1)
        hit = self.sorted_ids[pos] == wanted
        return np.asarray(self.order[pos[hit]], dtype=np.int64)

    def aligned_rows(self, arxiv_ids: list[str]) -> np.ndarray:
        """Each id's row in this build, or -1 (aligned with the ids given)."""
        out = np.full(len(arxiv_ids), -1, dtype=np.int64)
        if not arxiv_ids or not self.count:
            return out
        wanted = np.array([a.encode() for a in arxiv_ids], dtype=_ID_DTYPE)
        pos = np.minimum(np.searchsorted(self.sorted_ids, wanted), self.count - 1)
        hit = self.sorted_ids[pos] == wanted
        out[hit] = self.order[pos[hit]]
        return out

    def top(self, q: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosines) of the `count` nearest rows, best first."""
        count = min(count, self.count)
        if count <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        if self.hnsw is not None:
            m = self.hnsw.search(q, count)
            return np.asarray(m.keys, dtype=np.int64), 1.0 - np.asarray(m.distances)
        scores = self.dense() @ q
        return _best(np.arange(self.count), scores, count)


def _best(rows: np.ndarray, scores: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    if count < len(scores):
        part = np.argpartition(-scores, count - 1)[:count]
    else:
        part = np.arange(len(scores))
    part = part[np.argsort(-scores[part], kind="stable")]
    return rows[part], scores[part]


def _load_build(path: Path) -> _Build | None:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    gen = path / manifest["generation"]
    hnsw = None
    if manifest.get("hnsw"):
        hnsw = Index.restore(
            str(gen / "hnsw.usearch"),
            view=True,
            expansion_search=int(manifest.get("expansion_search", EXPANSION_SEARCH)),
        )
        if hnsw is None:
            raise RuntimeError(f"unreadable vector index {gen / 'hnsw.usearch'}")
    return _Build(
        generation=manifest["generation"],
        watermark=datetime.fromisoformat(manifest["watermark"]),
        ids=np.load(gen / "ids.npy", mmap_mode="r"),
        sorted_ids=np.load(gen / "sorted.npy", mmap_mode="r"),
        order=np.load(gen / "order.npy", mmap_mode="r"),
        matrix=np.load(gen / "matrix.npy", mmap_mode="r"),
        stamps=np.load(gen / "stamps.npy", mmap_mode="r"),
        hnsw=hnsw,
        manifest=manifest,
    )


# --- the delta: rows written since the build ----------------------------------------------


@dataclass(frozen=True)
class _Delta:
    ids: tuple[str, ...] = ()
    matrix: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=np.float32))
    index: dict[str, int] = field(default_factory=dict)  # arxiv id -> row
    stamps: dict[str, int] = field(default_factory=dict)  # arxiv id -> its row's stamp
    since: datetime | None = None  # re-read rows written after this
    revision: int = 0  # one more each time rows are added

    def plus(self, ids: list[str], vectors: np.ndarray, stamps: list[int]) -> _Delta:
        """A new delta with these rows added or replaced (a re-embedded paper: once)."""
        if not ids:
            return self
        merged = {a: self.matrix[i] for a, i in self.index.items()}
        when = dict(self.stamps)
        for a, v, t in zip(ids, vectors, stamps, strict=True):
            merged[a] = v
            when[a] = t
        order = tuple(merged)
        matrix = np.stack([merged[a] for a in order]).astype(np.float32, copy=False)
        index = {a: i for i, a in enumerate(order)}
        return _Delta(order, matrix, index, when, self.since, self.revision + 1)


def _held_since(build: _Build | None, delta: _Delta, since: datetime) -> tuple[int, int | None]:
    """What a reader holds of the rows written after `since`: how many papers' current rows
    (the delta's where it has one, else the build's) and the newest stamp among them."""
    after = stamp(since)
    in_delta = [t for t in delta.stamps.values() if t > after]
    count, newest = len(in_delta), max(in_delta, default=None)
    if build is not None and build.count:
        built = np.asarray(build.stamps)
        late = built > after
        if delta.ids:  # a paper the delta holds counts once, by its delta row
            rows = build.aligned_rows(list(delta.ids))
            rows = rows[rows >= 0]
            late[rows] = False
        if late.any():
            count += int(late.sum())
            top = int(built[late].max())
            newest = top if newest is None else max(newest, top)
    return count, newest


# --- the index ---------------------------------------------------------------------------


class VectorIndex:
    """The vector index in one directory: build, refresh, search, status.

    Thread-safe for readers: a search uses the build and delta current when it starts;
    `refresh` swaps in new ones whole.
    """

    def __init__(self, path: Path, *, check_every: float = CHECK_EVERY) -> None:
        self.path = Path(path)
        self.check_every = check_every
        self._lock = threading.Lock()
        self._build: _Build | None = None
        self._seen: tuple[int, int] | None = None  # the manifest's (inode, mtime_ns)
        self._delta = _Delta()
        self._checked = -float("inf")

    # -- reading --

    def refresh(self, conn: Connection, *, force: bool = False) -> None:
        """Load a newer build if one was published, and read rows written since (at most
        every `check_every` seconds unless forced: a stat and one indexed query)."""
        now = time.monotonic()
        if not force and now - self._checked < self.check_every:
            return
        with self._lock:
            if not force and now - self._checked < self.check_every:
                return
            self._checked = now
            self._reload()
            self._pull(conn)

    def _reload(self) -> None:
        try:
            st = (self.path / MANIFEST).stat()
        except FileNotFoundError:
            self._build, self._seen = None, None
            return
        seen = (st.st_ino, st.st_mtime_ns)
        if seen == self._seen:
            return
        for _attempt in range(3):  # a build published meanwhile may remove the one named
            try:
                build = _load_build(self.path)
                break
            except FileNotFoundError:
                time.sleep(0.05)
        else:
            return
        self._build, self._seen = build, seen
        self._delta = _Delta(since=build.watermark if build else None)

    def _pull(self, conn: Connection) -> None:
        """Add the rows written since `since` that this reader does not hold yet: a row the
        build or the delta has with the same stamp is skipped, so rows re-read inside the
        clock margin (or built just now) cost a query, not memory or search time."""
        delta, build = self._delta, self._build
        # With no build, everything stored is the delta (small stores, tests, first start).
        since = delta.since or (build.watermark if build else _EPOCH)
        now = datetime.now(UTC)
        # Rows inside the clock margin are re-read on every pull; when the store holds just
        # the rows this reader holds there (same count, same newest stamp), skip reading
        # them: after a bulk write that is up to every vector, re-read inside a request.
        if delta.since is not None and written_since(conn, since) == _held_since(
            build, delta, since
        ):
            self._delta = replace(delta, since=max(since, now - _CLOCK_MARGIN))
            return
        for batch in stream_vectors(conn, since=None if since == _EPOCH else since):
            held = np.full(len(batch.ids), -1, dtype=np.int64)  # the build's stamp, if any
            if build is not None:
                rows = build.aligned_rows(batch.ids)
                hit = rows >= 0
                held[hit] = build.stamps[rows[hit]]
            stamps = batch.stamps.tolist()
            keep = [
                i
                for i, (a, t) in enumerate(zip(batch.ids, stamps, strict=True))
                if t != held[i] and delta.stamps.get(a) != t
            ]
            delta = delta.plus(
                [batch.ids[i] for i in keep], batch.vectors[keep], [stamps[i] for i in keep]
            )
        # Every row stamped before now - margin was committed by now (a writer stamps and
        # commits within the margin), so later reads start there: anchored to the clock, not
        # to the newest row, the window stays the last minute's writes.
        self._delta = replace(delta, since=max(since, now - _CLOCK_MARGIN))

    @property
    def contents(self) -> tuple[str, str | None, int]:
        """A key that changes whenever what a search can find does (a new build loaded,
        rows added since), for caching results."""
        build, delta = self._build, self._delta
        return str(self.path), build.generation if build else None, delta.revision

    @property
    def available(self) -> bool:
        """Whether there is anything to search (a build or rows since)."""
        return bool((self._build and self._build.count) or self._delta.ids)

    def vector(self, arxiv_id: str) -> np.ndarray | None:
        """A paper's vector as the index holds it (float32), or None."""
        delta, build = self._delta, self._build
        if (i := delta.index.get(arxiv_id)) is not None:
            return np.asarray(delta.matrix[i])
        if build is not None and len(rows := build.rows_of([arxiv_id])):
            return np.asarray(build.matrix[rows[0]], dtype=np.float32)
        return None

    def search(
        self,
        vector: np.ndarray,
        k: int,
        *,
        allowed: Allowed | None = None,
        exclude: Collection[str] = (),
    ) -> list[tuple[str, float]]:
        """Up to k (arxiv_id, cosine) pairs nearest `vector`, best first.

        `exclude`: ids never returned. `allowed`: a set of ids (scored exactly when it has
        at most EXACT_CANDIDATES ids: cost ~ its size; larger ones filter the HNSW results)
        or a predicate over ids (filters the HNSW results, asking for more until k pass:
        cost ~ k / the share of papers it allows, an exact scan at worst).
        """
        build, delta = self._build, self._delta
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        dim = build.dim if build is not None else (delta.matrix.shape[1] if delta.ids else None)
        if dim is not None and q.shape[0] != dim:
            raise ValueError(f"query has {q.shape[0]} dimensions, the index {dim}")
        if k <= 0 or dim is None:
            return []
        excluded = set(exclude)
        is_set = allowed is not None and not callable(allowed)
        allowed_set: Collection[str] | None = allowed if is_set else None  # type: ignore[assignment]
        pred: Callable[[str], bool] | None = allowed if callable(allowed) else None
        if allowed_set is not None and not isinstance(allowed_set, set | frozenset | dict):
            allowed_set = set(allowed_set)

        def keep(a: str) -> bool:
            if a in excluded or a in delta.index:
                return False
            if allowed_set is not None:
                return a in allowed_set
            return pred is None or pred(a)

        out = self._search_delta(delta, q, k, excluded, allowed_set, pred)
        if build is not None and build.count:
            if allowed_set is not None and len(allowed_set) <= EXACT_CANDIDATES:
                rows = build.rows_of(allowed_set)
                scores = np.asarray(build.matrix[np.sort(rows)], dtype=np.float32) @ q
                rows, scores = _best(np.sort(rows), scores, min(len(rows), k + len(excluded)))
                out += [
                    (a, float(s))
                    for r, s in zip(rows, scores, strict=True)
                    if keep(a := build.ids[r].decode())
                ][:k]
            else:
                out += self._search_build(build, q, k, keep)
        out.sort(key=lambda p: -p[1])
        return [(a, round(s, 6)) for a, s in out[:k]]

    @staticmethod
    def _search_delta(
        delta: _Delta,
        q: np.ndarray,
        k: int,
        excluded: set[str],
        allowed_set: Collection[str] | None,
        pred: Callable[[str], bool] | None,
    ) -> list[tuple[str, float]]:
        if not delta.ids:
            return []
        scores = delta.matrix @ q
        rows, scores = _best(np.arange(len(delta.ids)), scores, len(delta.ids))
        out = []
        for r, s in zip(rows, scores, strict=True):
            a = delta.ids[r]
            if a in excluded or (allowed_set is not None and a not in allowed_set):
                continue
            if pred is not None and not pred(a):
                continue
            out.append((a, float(s)))
            if len(out) >= k:
                break
        return out

    @staticmethod
    def _search_build(
        build: _Build, q: np.ndarray, k: int, keep: Callable[[str], bool]
    ) -> list[tuple[str, float]]:
        count = k + 16
        while True:
            rows, scores = build.top(q, count)
            out = [
                (a, float(s))
                for r, s in zip(rows, scores, strict=True)
                if keep(a := build.ids[r].decode())
            ]
            if len(out) >= k or count >= build.count:
                return out[:k]
            count *= 4

    def status(self) -> dict[str, Any]:
        """What a reader serves: the build's size and age, and the delta's size."""
        build, delta = self._build, self._delta
        return {
            "path": str(self.path),
            "built": build is not None,
            "generation": build.generation if build else None,
            "count": build.count if build else 0,
            "dim": build.dim if build else None,
            "hnsw": bool(build and build.hnsw is not None),
            "built_at": build.manifest.get("built_at") if build else None,
            "watermark": build.watermark.isoformat() if build else None,
            "delta": len(delta.ids),
        }

    # -- writing --

    def build(
        self,
        engine: Engine,
        *,
        on_batch: Callable[[int], None] | None = None,
        hnsw_min: int = HNSW_MIN,
        connectivity: int = CONNECTIVITY,
        expansion_add: int = EXPANSION_ADD,
        expansion_search: int = EXPANSION_SEARCH,
        batch: int = 20_000,
    ) -> dict[str, Any]:
        """Build the index from every stored vector and publish it. Crash-safe: the build
        is written to a temporary directory and published by replacing the manifest, so a
        killed build leaves the previous one serving. `on_batch(rows_so_far)` reports
        progress. Returns the new build's status."""
        self.path.mkdir(parents=True, exist_ok=True)
        with _build_lock(self.path):
            started = datetime.now(UTC)
            tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=self.path))
            try:
                manifest = _write_build(
                    engine,
                    tmp,
                    on_batch=on_batch,
                    hnsw_min=hnsw_min,
                    params={
                        "connectivity": connectivity,
                        "expansion_add": expansion_add,
                        "expansion_search": expansion_search,
                    },
                    batch=batch,
                )
                generation = f"g{started:%Y%m%dT%H%M%S%f}-{os.getpid()}"
                manifest |= {
                    "generation": generation,
                    "built_at": started.isoformat(),
                    "watermark": (started - _CLOCK_MARGIN).isoformat(),
                }
                os.rename(tmp, self.path / generation)
                _publish(self.path, manifest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _prune(self.path, keep={generation})
        with engine.connect() as conn:
            self.refresh(conn, force=True)
        return self.status()


def _write_build(
    engine: Engine,
    out: Path,
    *,
    on_batch: Callable[[int], None] | None,
    hnsw_min: int,
    params: dict[str, int],
    batch: int,
) -> dict[str, Any]:
    with engine.connect() as conn:
        total = conn.scalar(
            sa.select(sa.func.count()).select_from(
                embeddings_t.join(papers, papers.c.arxiv_id == embeddings_t.c.arxiv_id)
            )
        )
        hnsw: Index | None = None
        ids: list[bytes] = []
        parts: list[np.ndarray] = []
        stamps: list[np.ndarray] = []
        for b in stream_vectors(conn, batch=batch):
            vecs = b.vectors
            if hnsw is None and (total or 0) >= hnsw_min:
                hnsw = Index(
                    ndim=vecs.shape[1],
                    metric="cos",
                    dtype=QUANTIZATION,
                    connectivity=params["connectivity"],
                    expansion_add=params["expansion_add"],
                    expansion_search=params["expansion_search"],
                )
            if hnsw is not None:
                keys = np.arange(len(ids), len(ids) + len(b.ids), dtype=np.uint64)
                hnsw.add(keys, vecs, threads=0)
            ids += [a.encode() for a in b.ids]
            parts.append(vecs.astype(np.float16))
            stamps.append(b.stamps)
            if on_batch is not None:
                on_batch(len(ids))
    dim = parts[0].shape[1] if parts else 0
    matrix = np.concatenate(parts) if parts else np.empty((0, dim), dtype=np.float16)
    del parts
    id_arr = np.array(ids, dtype=_ID_DTYPE)
    order = np.argsort(id_arr, kind="stable").astype(np.int64)
    np.save(out / "matrix.npy", matrix)
    np.save(out / "ids.npy", id_arr)
    np.save(out / "sorted.npy", id_arr[order])
    np.save(out / "order.npy", order)
    np.save(out / "stamps.npy", np.concatenate(stamps) if stamps else np.empty(0, np.int64))
    if hnsw is not None:
        hnsw.save(str(out / "hnsw.usearch"))
    for f in out.iterdir():
        _fsync(f)
    return {
        "count": len(ids),
        "dim": int(dim),
        "hnsw": hnsw is not None,
        "quantization": QUANTIZATION if hnsw is not None else "f16",
        **params,
    }


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(path: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically: readers see the old build or the new, never half."""
    tmp = path / f".{MANIFEST}.{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    _fsync(tmp)
    os.replace(tmp, path / MANIFEST)
    _fsync(path)


def _prune(path: Path, keep: set[str]) -> None:
    """Remove builds other than the current and the one before it (a reader may be
    loading it right now), and temporary directories of killed builds."""
    gens = sorted(p for p in path.iterdir() if p.is_dir() and p.name.startswith("g"))
    older = [p for p in gens if p.name not in keep]
    for p in older[:-1]:
        shutil.rmtree(p, ignore_errors=True)
    for p in path.glob("tmp-*"):
        shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    with open(path / "build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- the process's index -----------------------------------------------------------------

_readers: dict[Path, VectorIndex] = {}
_readers_lock = threading.Lock()


def index_for(settings: Settings) -> VectorIndex:
    """This process's reader of the settings' index (one per directory)."""
    path = vectors_dir(settings).resolve()
    with _readers_lock:
        if (index := _readers.get(path)) is None:
            index = _readers[path] = VectorIndex(path)
        return index


def rebuild(
    settings: Settings, engine: Engine, on_batch: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Rebuild the settings' index from the database (`papershelf reindex --vectors`).
    Returns the new build's status (`count`, `dim`, `hnsw`, `delta`, ...)."""
    return index_for(settings).build(engine, on_batch=on_batch)


def unbuilt_rows(conn: Connection, path: Path) -> tuple[int, int]:
    """(rows written since the current build's watermark, rows in the build): what every
    reader holds in memory and scans exactly. One indexed count and a manifest read."""
    built, since = 0, _EPOCH
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        manifest = json.loads((path / MANIFEST).read_text())
        built, since = int(manifest["count"]), datetime.fromisoformat(manifest["watermark"])
    newer = conn.scalar(
        sa.select(sa.func.count())
        .select_from(embeddings_t)
        .where(embeddings_t.c.created_at > since)
    )
    return int(newer or 0), built


def needs_rebuild(unbuilt: int, built: int) -> bool:
    """Fold the delta into a new build once it is large against the build: readers keep
    the delta in memory and scan it exactly, so it must stay small (DELTA_MIN, or a tenth
    of the build)."""
    return unbuilt >= max(DELTA_MIN, built // 10)


def rebuild_if_due(settings: Settings, engine: Engine) -> dict[str, Any] | None:
    """Rebuild when `needs_rebuild` says so (the ML pool calls this after writing
    embeddings); None when the index is current enough."""
    path = vectors_dir(settings)
    with engine.connect() as conn:
        unbuilt, built = unbuilt_rows(conn, path)
    if not needs_rebuild(unbuilt, built):
        return None
    return rebuild(settings, engine)
