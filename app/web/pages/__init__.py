"""The browser pages (Jinja2, server-rendered; reading works without JavaScript), one
module per thing they render; `router` holds them all, in matching order.

Every page error is an HTML page with a clear message (`errors.error_page`: never the API's
JSON, never a 500), so page handlers return responses instead of raising, and read query
parameters as plain strings that they validate themselves (`params`).

May import the domain (`app.listing`, `app.search`, `app.db` read queries, `app.artifacts`),
`app.jobs` (to queue on-demand fetches and FAQ requests) and the web layer's shared modules
(`deps`, `errors`, `http`, `templating`, `markup`, `feeds`, `export_lists`, and `api.faq` for the
FAQ lookup it shares with the API); never workers or `ml`.
"""

from fastapi import APIRouter

from app.web.pages import arxiv, assets, exports, faq, home, search, venues

router = APIRouter()
# faq first: `arxiv`'s /arxiv/{rest:path} would otherwise answer /arxiv/{id}/faq.
for _module in (faq, home, assets, arxiv, search, venues, exports):
    router.include_router(_module.router)
