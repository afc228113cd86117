"""The web edge: the browser pages (`pages`), the JSON API (`api`), feeds, the lab and the
related-papers routes, with what they share: typed dependencies (`deps`), the one error shape
and table (`errors`), ETags, cache headers and page tokens (`http`), the templates and their
filters (`templating`, `markup`, `mathml`, `highlight`), the middleware (client address,
allowed hosts, rate limits, access log, metrics, compression) and the protocol guard
(`protocol`: HEAD, `Allow`, NUL and URL-length refusals). `app.main` assembles them.

May import: settings, the store's read queries, the domain and `app.jobs` (the only way it
queues work). Never `workers` or `ml`: the web process runs without torch.
"""
