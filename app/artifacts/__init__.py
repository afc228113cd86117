"""Derived artifacts: what is computed from papers and stored beside them — machine TL;DRs
(`summaries`), thumbnails (`thumbnails`), LLM FAQ answers and their prompt (`faqs`) and
related-paper keywords (`related`) — on one shared base (`base`: which papers need one, the
idempotent upsert, chunked reads).

Part of the domain: imports the store (`app.db`), settings and the search package only;
never web, CLI, job, worker or ML code, and nothing here imports torch.
"""
