"""LaTeX text macros in titles and abstracts, read into a small tree the pages render as HTML
(`app.web.markup`) and the feeds as plain text (`plain`).

Understood: `\\emph{x}`, `\\textit{x}`, `\\textsl{x}` (emphasis), `\\textbf{x}` (strong),
`\\texttt{x}` (code), `\\textrm`/`\\textsf`/`\\textsc`/`\\textup`/`\\textnormal`/`\\mbox`/
`\\underline` (their text), `\\url{u}`, `\\href{u}{t}` (a link only for http and https; else
the text), `\\footnote{x}` (" (x)"), `\\cite{…}` and its kin (dropped, with the space or tie
before them), `~` between words (a no-break space; "~10%" stays), `--` and `---` (en and em
dashes), `\\%`, `\\&`, `\\_`, `\\#`, `\\$`. Arguments nest. Math (`$…$`) is the caller's: the
tree holds no math, and `plain` leaves it as written. Anything else stays as written, so a
brace that does not close, or an unknown macro, is shown rather than lost.

Pure and total: no input raises, and depth is bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

NBSP = "\u00a0"
MAX_DEPTH = 8
# Bounds that keep hostile text cheap: no real argument is this long, no real abstract has
# this many macros (the rest of the text is then shown as written).
MAX_ARGUMENT = 2000
MAX_MACROS = 200

Style = Literal["em", "strong", "code", "plain"]


@dataclass(frozen=True, slots=True)
class Styled:
    style: Style
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Link:
    url: str  # http or https only
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Footnote:
    children: tuple[Node, ...]


Node = str | Styled | Link | Footnote

_STYLES: dict[str, Style] = {
    "emph": "em",
    "textit": "em",
    "textsl": "em",
    "textbf": "strong",
    "texttt": "code",
    "textrm": "plain",
    "textsf": "plain",
    "textsc": "plain",
    "textup": "plain",
    "textnormal": "plain",
    "mbox": "plain",
    "underline": "plain",
}
_CITES = frozenset(["cite", "citep", "citet", "citealp", "citeauthor", "citeyear", "nocite"])
_MACRO = re.compile(
    r"\\(?P<name>[a-zA-Z]+)\*?\s*(?P<opts>(?:\[[^\[\]{}]{0,200}\]\s*){0,2})(?=\{)"
    r"|\\(?P<escaped>[%&_#$])"
    r"|(?P<url>https?://[^\s<>\"'{}\\]+)"
    r"|(?P<dash>-{2,3})"
    r"|(?P<tie>~)"
)
# The same math spans as app.web.mathml.MATH: `plain` leaves them alone.
_MATH = re.compile(r"(?<!\\)\$\$([^$]+?)\$\$|(?<!\\)\$([^$]+?)(?<!\\)\$")
_QUICK = re.compile(r"[\\~]|--|https?://")


def _group(text: str, start: int) -> tuple[str, int] | None:
    """The text inside the braces opening at `start`, and where it ends; None when they do
    not close (escaped braces do not count)."""
    depth, i = 0, start
    stop = min(len(text), start + MAX_ARGUMENT)
    while i < stop:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None


_LINKABLE = re.compile(r"https?://[^\s<>\"'{}\\`]+", re.IGNORECASE)


def _http(url: str) -> bool:
    """Whether `url` may be a link: http or https, and nothing a URL cannot hold."""
    return _LINKABLE.fullmatch(url) is not None


def _trim_url(url: str) -> str:
    while url and (
        url[-1] in ".,;:!?"
        or (url[-1] in ")]" and url.count("(" if url[-1] == ")" else "[") < url.count(url[-1]))
    ):
        url = url[:-1]
    return url


class _Out:
    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def text(self, value: str) -> None:
        if not value:
            return
        if self.nodes and isinstance(self.nodes[-1], str):
            self.nodes[-1] += value
        else:
            self.nodes.append(value)

    def add(self, node: Node) -> None:
        self.nodes.append(node)

    def drop_trailing_space(self) -> None:
        if self.nodes and isinstance(self.nodes[-1], str):
            self.nodes[-1] = self.nodes[-1].rstrip(" ~" + NBSP)
            if not self.nodes[-1]:
                self.nodes.pop()


def parse(text: str, depth: int = 0) -> tuple[Node, ...]:
    """The text (no math in it) as a tree of plain strings and the nodes above."""
    if not _QUICK.search(text):
        return (text,) if text else ()
    out = _Out()
    last = 0
    pos = 0
    macros = 0
    while (m := _MACRO.search(text, pos)) is not None:
        out.text(text[last : m.start()])
        last = pos = m.end()
        if m.group("escaped"):
            out.text(m.group("escaped"))
        elif url := m.group("url"):
            url = _trim_url(url)
            out.add(Link(url, (url,)))
            last = pos = m.start() + len(url)
        elif dash := m.group("dash"):
            out.text("\u2014" if len(dash) == 3 else "\u2013")
        elif m.group("tie"):
            before = text[m.start() - 1] if m.start() else " "
            after = text[m.end()] if m.end() < len(text) else " "
            # "Fig.~3" and "et al.~\cite" are ties; "~10%" after a space means "about".
            tie = not before.isspace() and not after.isspace()
            out.text(NBSP if tie else "~")
        elif (macros := macros + 1) > MAX_MACROS:
            out.text(m.group(0))
        else:
            done = _macro(text, m, out, depth)
            if done is None:  # not one of ours, or its braces do not close: as written
                out.text(m.group(0))
            else:
                last = pos = done
    out.text(text[last:])
    return tuple(out.nodes)


def _macro(text: str, m: re.Match[str], out: _Out, depth: int) -> int | None:
    """Read the macro at `m` into `out`; where its arguments end, or None to keep it as
    written."""
    name = m.group("name")
    if name not in _STYLES and name not in _CITES and name not in ("url", "href", "footnote"):
        return None
    first = _group(text, m.end())
    if first is None:
        return None
    arg, end = first
    if name in _CITES:
        out.drop_trailing_space()
        return end
    if name == "url":
        url = arg.strip()
        if _http(url):
            out.add(Link(url, (url,)))
        else:
            out.text(url)
        return end
    if name == "href":
        while end < len(text) and text[end].isspace():
            end += 1
        second = _group(text, end) if end < len(text) and text[end] == "{" else None
        if second is None:
            return None
        label, end = second
        children = _inner(label, depth)
        url = arg.strip()
        if _http(url):
            out.add(Link(url, children))
        else:
            for child in children:
                if isinstance(child, str):
                    out.text(child)
                else:
                    out.add(child)
        return end
    children = _inner(arg, depth)
    if name == "footnote":
        out.drop_trailing_space()
        out.add(Footnote(children))
        return end
    out.add(Styled(_STYLES[name], children))
    return end


def _inner(arg: str, depth: int) -> tuple[Node, ...]:
    """A macro's argument: parsed again, bare braces dropped; beyond MAX_DEPTH, its text."""
    if depth >= MAX_DEPTH:
        return (arg,)
    nodes = parse(arg, depth + 1)
    return tuple(_unbrace(n) if isinstance(n, str) else n for n in nodes)


def _unbrace(text: str) -> str:
    # Grouping braces inside an argument ("\emph{a {b} c}"), not escaped ones.
    return re.sub(r"(?<!\\)[{}]", "", text)


def plain_nodes(nodes: tuple[Node, ...]) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, Styled):
            out.append(plain_nodes(node.children))
        elif isinstance(node, Link):
            label = plain_nodes(node.children)
            out.append(label if label.strip() == node.url else f"{label} ({node.url})")
        else:
            out.append(f" ({plain_nodes(node.children)})")
    return "".join(out)


def plain(text: str | None) -> str:
    """Title or abstract text with its macros cleaned for plain-text readers (feeds); math
    spans stay as written."""
    text = text or ""
    if not _QUICK.search(text):
        return text
    out: list[str] = []
    last = 0
    for m in _MATH.finditer(text):
        out.append(plain_nodes(parse(text[last : m.start()])))
        out.append(m.group(0))
        last = m.end()
    out.append(plain_nodes(parse(text[last:])))
    return "".join(out)
