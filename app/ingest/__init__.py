"""Pure parsers that turn every arXiv wire format into `PaperRecord`s.

`formats` detects a file's format and picks the parser (`arxiv_api`, `oai_pmh`, `rss`,
`jsonl`, `venues`); the parsers share `records` (the types), `ids`, `text` and `safe_xml`,
and never import `formats` back. Part of the domain: imports the taxonomy only, never the
store, web, CLI, jobs, workers or ML code.
"""
