"""Search-term highlighting: the query's terms marked with <mark> in escaped text."""

from __future__ import annotations

import re
from functools import lru_cache

from markupsafe import Markup, escape


@lru_cache(maxsize=256)
def highlighter(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    """Terms are index-token strings ("state space"): match their tokens separated by any
    non-word characters, whole tokens only, ignoring case. (Cached: a page marks the same
    terms in every card.)"""
    alts = [r"\W+".join(re.escape(t) for t in term.split()) for term in terms if term.split()]
    if not alts:
        return None
    alts.sort(key=len, reverse=True)  # longest first, so phrases win over their words
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.IGNORECASE)


def highlight(text: str, pattern: re.Pattern[str] | None) -> Markup:
    """`text` escaped, with each match of `pattern` in a <mark>."""
    if pattern is None:
        return escape(text)
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        out.append(str(escape(text[last : m.start()])))
        out.append(f"<mark>{escape(m.group(0))}</mark>")
        last = m.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))
