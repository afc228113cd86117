"""The vector index over the stored paper embeddings, and [Related] by embedding.

The database (`paper_embeddings`) is the source of truth; the index is derived from it and
lives under `settings.data_dir / "vectors"`. One object, `VectorIndex`, owns the index's
whole life: `build` (crash-safe full rebuild), `refresh` (reload a new build, pick up rows
written since), `search` and `status`. `rebuild(settings, engine)` is what
`papershelf reindex --vectors` runs, and `rebuild_if_due` what the ML pool runs after writing
embeddings (so the delta every reader scans stays small); `index_for(settings)` is the
process's shared reader.

Part of the domain, above app.artifacts (it reads embeddings and falls back to the keyword
[Related]); imports numpy and usearch, never torch.
"""

from __future__ import annotations

from app.vectors.index import (
    Allowed,
    VectorIndex,
    index_for,
    rebuild,
    rebuild_if_due,
    vectors_dir,
)

__all__ = ["Allowed", "VectorIndex", "index_for", "rebuild", "rebuild_if_due", "vectors_dir"]
