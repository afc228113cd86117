"""The job contract: how web requests, the CLI and one pool queue work for a pool.

Owns the Redis settings for arq (the patient ones workers use, the quick ones for web
requests: `connections`), `JobRequest` and its submission (`queueing`), job ids, job state
read through arq's `Job` API, each pool's request builders (`fetch`, `summaries`,
`pictures`, `faq`) and the back-fills that queue many of them (`backfill`). Jobs are queued
by function name, so nothing here imports a worker's code, and nothing here imports torch:
this package is to the pools what arq's `connections.py` is to its `worker.py`.

May import: the standard library, arq's queueing side (`arq.connections`, `arq.jobs`),
redis, `app.settings`, `app.db` and the domain (`app.artifacts`, `app.ingest`, ...). Never
`app.web`, `app.cli`, `workers` or `ml`.
"""
