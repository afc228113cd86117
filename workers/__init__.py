"""The arq worker pools and the clients their jobs use.

Owns each pool's jobs and worker settings (`fetch`: arXiv into the store; `llm`: FAQ answers;
`ml`: TL;DRs and thumbnails), what every pool shares (`pool`: worker settings, the worker
class, re-queueing a failed job), the arXiv client (`arxiv`) behind the deployment's limiter
(`politeness`), and the in-job retry policy (`retrying`).

May import: the standard library, arq, redis, httpx, tenacity, `app.settings`, `app.db`, the
domain (`app.ingest`, `app.artifacts`, ...) and `app.jobs` (how pools queue work for each
other). Never `app.web` or `app.cli`; only the ML pool imports `ml`.
"""
