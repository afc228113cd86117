"""Papershelf: a self-hostable browser for each day's arXiv papers.

The packages, bottom up (imports point down only; `pyproject.toml`'s import-linter contracts
keep it so): `settings`; `ingest` (pure parsers) and `db` (the store); `search`, `schedule`,
`artifacts` (derived artifacts); `listing`, `importer`, `reindex`, `fetch_status` (the rest
of the domain); `jobs` (the job contract); then the edges: `web` with `main` (the site) and
`cli` (the admin CLI). The worker pools are the top-level `workers` package; the models are
`ml`, which nothing in `app` imports except the CLI's `ml` command, lazily.
"""

__version__ = "0.1.0"
