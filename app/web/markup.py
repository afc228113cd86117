"""Paper text as safe HTML: the functions the templates use as filters.

Everything is escaped except what these functions build themselves (MathML from
`app.web.mathml`, <mark> from `app.web.highlight`, links, <strong>).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markupsafe import Markup, escape

from app.artifacts.faqs import spans
from app.taxonomy import get_taxonomy
from app.web.highlight import highlight, highlighter
from app.web.mathml import MATH, safe_mathml

_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


def rich(text: str | None, terms: Sequence[str] = ()) -> Markup:
    """Title/abstract text: whitespace collapsed, $TeX$ as MathML, search terms marked,
    everything else escaped."""
    text = " ".join((text or "").split())
    pattern = highlighter(terms)
    out: list[str] = []
    last = 0
    for m in MATH.finditer(text):
        out.append(highlight(text[last : m.start()], pattern))
        display = m.group(1) is not None
        math = safe_mathml(m.group(1) if display else m.group(2), display)
        out.append(math if math is not None else escape(m.group(0)))
        last = m.end()
    out.append(highlight(text[last:], pattern))
    return Markup("".join(out))


def linkify(text: str | None) -> Markup:
    """Escaped text with http(s) URLs made into links."""
    text = text or ""
    out: list[str] = []
    last = 0
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(".,;:!?)]}")
        out.append(str(escape(text[last : m.start()])))
        out.append(f'<a href="{escape(url)}" rel="noopener">{escape(url)}</a>')
        last = m.start() + len(url)
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def faq_inline(text: str) -> Markup:
    """One line of an FAQ answer: **bold** runs, TeX as MathML, everything else escaped."""
    out = []
    for bold, run in spans(text):
        html = rich(run)
        out.append(Markup("<strong>{}</strong>").format(html) if bold else html)
    return Markup("").join(out)


def category_name(cat: str) -> str:
    """A category's name from the taxonomy, else its id."""
    return get_taxonomy().name(cat) or cat
