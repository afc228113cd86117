"""The store: tables (`models`, schema owned by the migrations), engines and sessions
(`engine`, `migrate`), the statement helpers every writer shares (`statements`), paper and
venue writes (`store`), fetch bookkeeping (`runs`) and read queries (`queries`).

The bottom layer beside `app.settings`: imports nothing of the domain except the parser's
record types the store writes (`app.ingest.records`, `app.ingest.text.title_key`) and the
search package, which the store asks to index the papers it inserts. Derived artifacts'
tables are written by `app.artifacts`.
"""
