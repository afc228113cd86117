"""The JSON API under /api/v1 (OpenAPI documented), one router module per resource, the
request and response models in `schemas`, shared parameters in `params`.

Errors use `app.web.errors`' one shape; every bad input is a 4xx, never a 500. Listings page
by keyset with signed page tokens, and paper and listing responses carry a strong ETag and
`Cache-Control` (`app.web.http`).

`router` holds them all, in matching order: the FAQ's and the thumbnail's
`/papers/{id}/...` routes come before `papers`' `/papers/{id:path}`, which would otherwise
answer them.

May import the domain (`app.db`, `app.listing`, `app.search`, `app.artifacts`, ...),
`app.jobs` (to queue and follow work) and the web layer's shared modules (`deps`, `errors`,
`http`); never `workers`, `ml` or arq's internals.
"""

from fastapi import APIRouter

from app.web.api import (
    admin,
    alerts,
    arxiv_query,
    exports,
    faq,
    listings,
    ml,
    papers,
    search,
    stats,
    venues,
)

router = APIRouter()
for _module in (
    faq,
    ml,
    papers,
    search,
    stats,
    listings,
    venues,
    admin,
    alerts,
    exports,
    # arXiv's own path, /api/query (outside /api/v1).
    arxiv_query,
):
    router.include_router(_module.router)
