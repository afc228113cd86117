"""Paper text as safe HTML: the functions the templates use as filters.

Everything is escaped except what these functions build themselves (MathML from
`app.web.mathml`, <mark> from `app.web.highlight`, links, <strong>, and the <em>, <strong>,
<code> and links of LaTeX text macros read by `app.ingest.tex_macros`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from markupsafe import Markup, escape

from app.artifacts.faqs import spans
from app.ingest.tex_macros import Footnote, Link, Node, Styled, parse, plain
from app.taxonomy import get_taxonomy
from app.web.highlight import highlight, highlighter
from app.web.mathml import MATH, safe_mathml

_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


def _render(nodes: Sequence[Node], pattern: re.Pattern[str] | None, *, links: bool = True) -> str:
    """LaTeX text macros as HTML; every string escaped (and its search terms marked)."""
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(str(highlight(node, pattern)))
        elif isinstance(node, Styled):
            inner = _render(node.children, pattern, links=links)
            out.append(inner if node.style == "plain" else f"<{node.style}>{inner}</{node.style}>")
        elif isinstance(node, Link):
            # A link's text may not hold another link.
            inner = _render(node.children, pattern, links=False)
            out.append(
                f'<a href="{escape(node.url)}" rel="noopener nofollow">{inner}</a>'
                if links
                else inner
            )
        elif isinstance(node, Footnote):
            out.append(f" ({_render(node.children, pattern, links=links)})")
    return "".join(out)


#: Texts whose parsed pieces are kept: a search page's 25 cards, a paper page and its related
#: papers render the same titles and abstracts request after request.
_PIECES_CACHED = 4096


@lru_cache(maxsize=_PIECES_CACHED)
def _pieces(text: str) -> tuple[tuple[Node, ...] | Markup, ...]:
    """The text split once into macro trees (marked per request) and finished math."""
    out: list[tuple[Node, ...] | Markup] = []
    last = 0
    for m in MATH.finditer(text):
        out.append(parse(text[last : m.start()]))
        display = m.group(1) is not None
        math = safe_mathml(m.group(1) if display else m.group(2), display)
        out.append(math if math is not None else escape(m.group(0)))
        last = m.end()
    out.append(parse(text[last:]))
    return tuple(out)


@lru_cache(maxsize=_PIECES_CACHED)
def _unmarked(text: str, links: bool) -> Markup:
    """`rich` without search terms, whole (listings, paper pages, [Related])."""
    return _assemble(text, None, links)


def _assemble(text: str, pattern: re.Pattern[str] | None, links: bool) -> Markup:
    return Markup(
        "".join(
            piece if isinstance(piece, Markup) else _render(piece, pattern, links=links)
            for piece in _pieces(text)
        )
    )


def rich(text: str | None, terms: Sequence[str] = (), *, links: bool = True) -> Markup:
    """Title/abstract text: whitespace collapsed, $TeX$ as MathML, LaTeX text macros
    (`\\emph`, `\\href`, `--`…) rendered, search terms marked, everything else escaped.
    `links=False` for text that is itself inside a link (a card's title): URLs as text."""
    text = " ".join((text or "").split())
    pattern = highlighter(tuple(terms))
    if pattern is None:
        return _unmarked(text, links)
    return _assemble(text, pattern, links)


def plaintex(text: str | None) -> str:
    """Title text for places that take no markup (a page's <title>): macros cleaned."""
    return " ".join(plain(text).split())


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
        html = Markup("<strong>{}</strong>").format(html) if bold else html
        # `rich` trims each run; the spaces around a bold run are part of the sentence.
        lead = " " if run[:1].isspace() and run.strip() else ""
        trail = " " if run[-1:].isspace() else ""
        out.append(Markup(lead) + html + Markup(trail))
    return Markup("").join(out)


def category_name(cat: str) -> str:
    """A category's name from the taxonomy, else its id."""
    return get_taxonomy().name(cat) or cat
