"""Hypothesis strategies for search-query text that leans on the query syntax."""

from __future__ import annotations

from hypothesis import strategies as st

# Pieces of our syntax, of FTS5's and of tsquery's, and things that break naive quoting.
SYNTAX = [
    "OR",
    "AND",
    "NOT",
    "-",
    "--",
    "\u2212",
    '"',
    "“",
    "”",
    "ti:",
    "au:",
    "abs:",
    "title:",
    "author:",
    "abstract:",
    "cat:",
    "-cat:",
    "date:",
    "-date:",
    "..",
    "cs.LG",
    "cs",
    "cs.*",
    "foo.BAR",
    "2025",
    "2025-08",
    "2025-08-01..",
    "..2025-09-30",
    "2025-13-40",
    "(",
    ")",
    "*",
    "^",
    "NEAR",
    "NEAR(",
    "{title}",
    "{title abstract}:",
    ":",
    "+",
    "\x00",
    "'",
    "''",
    "\\",
    "!",
    "&",
    "|",
    "<->",
    "<2>",
    ":*",
    ":A",
    "state-of-the-art",
    "C++",
    "GPT-4o",
    "Schrödinger",
    "the",
    "a",
    "é",
    "\u0301",
    "\U0001f600",
    "\u19b0",
    "\ue000",
    ",",
    ";",
]


def hostile_queries() -> st.SearchStrategy[str]:
    """Queries built from syntax fragments and random text, glued with or without spaces."""
    piece = st.sampled_from(SYNTAX) | st.text(max_size=8)
    return st.lists(st.tuples(piece, st.sampled_from(["", " ", "  ", "\t"])), max_size=24).map(
        lambda parts: "".join(p + sep for p, sep in parts)
    )
