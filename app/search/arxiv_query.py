"""arXiv's `search_query` grammar (export.arxiv.org `/api/query`), parsed into a tree.

    ti:"diffusion model" AND (au:song OR au:ermon) ANDNOT cat:cs.CV
    submittedDate:[202601010000 TO 202601312359] AND cat:cs.*

Fields: `ti` title, `au` authors, `abs` abstract, `co` comment, `jr` journal reference, `rn`
report number, `cat` category (`cs.LG`, an alias, or an archive as `cs.*`), `id` arXiv id,
`all` title + abstract + authors; a word without a field is `all:`. `submittedDate:` and
`lastUpdatedDate:` take `[YYYYMMDDTTTT TO YYYYMMDDTTTT]` (or the same in double quotes; 8 to
14 digits, `*` for an open end; GMT; both ends inclusive to the precision written).
A field before parentheses applies to every term inside: `ti:(space time)`.
`au:del_maestro` is the phrase "del maestro" (an underscore separates words, as on arXiv).

Operators are upper case only: `AND`, `ANDNOT` (also `AND NOT`, and `NOT` after a term), `OR`;
terms written side by side mean OR. `AND` and `ANDNOT` bind tighter than `OR` and group left
to right, as arXiv's Lucene parser does (`a OR b AND c` is `a OR (b AND c)`); parentheses
group. Lower-case `and`/`or` are words.

Values become the same index tokens the search backends use (`index_tokens`): a value of
several tokens is a phrase. Pure: no I/O; the taxonomy resolves categories.

Error policy: what arXiv refuses (an unclosed quote or parenthesis, an unknown field, two
operators in a row, an operator with nothing to work on, a bad date range) and what would make
an unbounded statement (over `MAX_CHARS` characters, `MAX_TERMS` terms or `MAX_DEPTH` nested
groups) raise `ArxivQueryError` with a message for the error feed. A term that can match
nothing here (`rn:`, no words, an unknown category, a malformed `id:`) becomes `Nothing`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.search.query import MAX_PHRASE_TOKENS, MAX_TOKEN_CHARS, index_tokens
from app.taxonomy import get_taxonomy

MAX_CHARS = 10_000
MAX_TERMS = 64
MAX_DEPTH = 16
_SHOWN = 60

TextField = Literal["all", "ti", "au", "abs", "co", "jr", "rn"]
DateField = Literal["submittedDate", "lastUpdatedDate"]
TEXT_FIELDS: tuple[TextField, ...] = ("all", "ti", "au", "abs", "co", "jr", "rn")
DATE_FIELDS: tuple[DateField, ...] = ("submittedDate", "lastUpdatedDate")
FIELDS = frozenset((*TEXT_FIELDS, *DATE_FIELDS, "cat", "id"))
OPERATORS = frozenset(("AND", "OR", "ANDNOT", "NOT"))

# arXiv's identifier syntax alone (`id_list`): a well-formed id arXiv never issued
# (0000.0000, 0808.05394) is simply not found, as on arXiv; anything else is an error.
_ID_SYNTAX = re.compile(
    r"(?:\d{4}\.\d{4,5}|[a-zA-Z]+(?:-[a-zA-Z]+)*(?:\.[A-Za-z]{2})?/\d{7})(?:v\d{1,6})?", re.ASCII
)
_STAMP = re.compile(r"\d{8}(?:\d{2}){0,3}", re.ASCII)


class ArxivQueryError(ValueError):
    """Input arXiv answers with its error feed; the message is shown to the client."""


# --- the tree -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """A word or phrase (adjacent tokens, in order) in one field."""

    field: TextField
    tokens: tuple[str, ...]
    raw: str


@dataclass(frozen=True, slots=True)
class Category:
    """Listed in any of `categories` (canonical ids)."""

    categories: tuple[str, ...]
    raw: str


@dataclass(frozen=True, slots=True)
class Identifier:
    arxiv_id: str
    raw: str


@dataclass(frozen=True, slots=True)
class DateRange:
    """`start <= t < end` (UTC); None is an open end."""

    field: DateField
    start: datetime | None
    end: datetime | None
    raw: str


@dataclass(frozen=True, slots=True)
class Nothing:
    """A term nothing here can match (see the module docstring)."""

    raw: str


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AndNot:
    left: Node
    right: Node


Leaf = Text | Category | Identifier | DateRange | Nothing
Node = Leaf | And | Or | AndNot


def render(node: Node) -> str:
    """The query in canonical form (fields explicit), as the feed's title shows it."""
    if isinstance(node, And):
        return " AND ".join(_grouped(c) for c in node.children)
    if isinstance(node, Or):
        return " OR ".join(_grouped(c) for c in node.children)
    if isinstance(node, AndNot):
        return f"{_grouped(node.left)} ANDNOT {_grouped(node.right)}"
    return node.raw


def _grouped(node: Node) -> str:
    text = render(node)
    return f"({text})" if isinstance(node, And | Or | AndNot) else text


def leaves(node: Node) -> Iterator[Leaf]:
    if isinstance(node, And | Or):
        for child in node.children:
            yield from leaves(child)
    elif isinstance(node, AndNot):
        yield from leaves(node.left)
        yield from leaves(node.right)
    else:
        yield node


# --- tokens ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: Literal["(", ")", "op", "word", "phrase", "range", "field"]
    text: str


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace() or ch == "+":  # `+` is a space in arXiv's URLs
            i += 1
        elif ch in "()":
            out.append(_Tok("(" if ch == "(" else ")", ch))
            i += 1
        elif ch == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise ArxivQueryError(f"Quotation does not close: {_clip(text[i:])}")
            out.append(_Tok("phrase", text[i + 1 : end]))
            i = end + 1
        elif ch == "[":
            end = text.find("]", i + 1)
            if end < 0:
                raise ArxivQueryError(f"Range does not close: {_clip(text[i:])}")
            out.append(_Tok("range", text[i + 1 : end]))
            i = end + 1
        else:
            j = i
            while j < n and not (text[j].isspace() or text[j] in '()"[+'):
                j += 1
            word = text[i:j]
            i = j
            name, colon, rest = word.partition(":")
            if colon:
                if name not in FIELDS:
                    raise ArxivQueryError(f"Invalid field: {_clip(name)}")
                out.append(_Tok("field", name))
                if rest:
                    out.append(_Tok("word", rest))
            elif word in OPERATORS:
                out.append(_Tok("op", word))
            else:
                out.append(_Tok("word", word))
    return out


# --- the parser -----------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.terms = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expr(self, field: str, depth: int) -> Node:
        """OR level: `conj (OR? conj)*`, side by side meaning OR."""
        parts = [self.conj(field, depth)]
        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind == "op":
                if tok.text != "OR":
                    raise ArxivQueryError(
                        f"Query contains an operator in the wrong place: {tok.text}"
                    )
                self.take()
                self.expect_operand("OR")
            parts.append(self.conj(field, depth))
        return parts[0] if len(parts) == 1 else Or(tuple(_flatten(parts, Or)))

    def conj(self, field: str, depth: int) -> Node:
        """AND level: `unary ((AND | ANDNOT | AND NOT | NOT) unary)*`, left to right."""
        node = self.unary(field, depth)
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text != "OR":
            self.take()
            negate = tok.text in ("ANDNOT", "NOT")
            nxt = self.peek()
            if tok.text == "AND" and nxt is not None and nxt.kind == "op" and nxt.text == "NOT":
                self.take()
                negate = True
            self.expect_operand(tok.text)
            right = self.unary(field, depth)
            node = AndNot(node, right) if negate else And(tuple(_flatten([node, right], And)))
        return node

    def expect_operand(self, op: str) -> None:
        tok = self.peek()
        if tok is None or tok.kind == ")":
            raise ArxivQueryError(f"Query ends with an operator: {op}")
        if tok.kind == "op":
            raise ArxivQueryError(f"Query contains 2 consecutive operators: {op} {tok.text}")

    def unary(self, field: str, depth: int) -> Node:
        tok = self.peek()
        if tok is None:
            raise ArxivQueryError("Query is missing a term")
        if tok.kind == "op":
            raise ArxivQueryError(f"Query cannot start with an operator: {tok.text}")
        if tok.kind == ")":
            raise ArxivQueryError("Unmatched closing parenthesis")
        if tok.kind == "(":
            return self.group(field, depth)
        self.take()
        if tok.kind == "field":
            value = self.peek()
            if value is None or value.kind in ("op", ")"):
                raise ArxivQueryError(f"Field has no value: {tok.text}:")
            if value.kind == "(":
                return self.group(tok.text, depth)
            self.take()
            return self.leaf(tok.text, value)
        return self.leaf(field, tok)

    def group(self, field: str, depth: int) -> Node:
        if depth >= MAX_DEPTH:
            raise ArxivQueryError(f"Query nests parentheses more than {MAX_DEPTH} deep")
        self.take()  # "("
        tok = self.peek()
        if tok is not None and tok.kind == ")":
            raise ArxivQueryError("Empty parentheses")
        node = self.expr(field, depth + 1)
        tok = self.peek()
        if tok is None or tok.kind != ")":
            raise ArxivQueryError("Parenthesis does not close")
        self.take()
        return node

    def leaf(self, field: str, tok: _Tok) -> Leaf:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise ArxivQueryError(f"Query has more than {MAX_TERMS} terms")
        value = tok.text
        if field in DATE_FIELDS:
            return _date_range(field, value)
        if tok.kind == "range":
            raise ArxivQueryError(f"A [range] needs submittedDate: or lastUpdatedDate: ({field})")
        shown = f'"{value}"' if tok.kind == "phrase" or " " in value else value
        raw = f"{field}:{shown}"
        if field == "cat":
            return _category(value.strip(), raw)
        if field == "id":
            try:
                arxiv_id, _version = parse_arxiv_id(value.strip())
            except InvalidArxivId:
                return Nothing(raw)
            return Identifier(arxiv_id, raw)
        tokens = tuple(index_tokens(value))[:MAX_PHRASE_TOKENS]
        if field == "rn" or not tokens or any(len(t) > MAX_TOKEN_CHARS for t in tokens):
            # No report numbers are stored; no words, or a "word" no index holds.
            return Nothing(raw)
        return Text(cast(TextField, field), tokens, raw)


def _flatten(parts: list[Node], kind: type[And] | type[Or]) -> Iterator[Node]:
    for part in parts:
        if isinstance(part, kind):
            yield from part.children
        else:
            yield part


def _category(value: str, raw: str) -> Leaf:
    token = value[:-2] if value.endswith(".*") else value
    found = get_taxonomy().expand(token) if token else []
    return Category(tuple(found), raw) if found else Nothing(raw)


def _stamp(text: str, *, end: bool) -> datetime | None:
    """`YYYYMMDD[HH[MM[SS]]]` in GMT; for an upper end, the first instant after it."""
    if text == "*":
        return None
    if not _STAMP.fullmatch(text):
        raise ArxivQueryError(f"Invalid date in range: {_clip(text)} (expected YYYYMMDDTTTT)")
    padded = text + "0" * (14 - len(text))
    try:
        moment = datetime.strptime(padded, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ArxivQueryError(f"Invalid date in range: {_clip(text)}") from None
    if not end:
        return moment
    step = {8: timedelta(days=1), 10: timedelta(hours=1), 12: timedelta(minutes=1)}
    return moment + step.get(len(text), timedelta(seconds=1))


def _date_range(field: DateField, value: str) -> DateRange:
    parts = value.split()
    if len(parts) == 3 and parts[1] == "TO":
        lo, hi = parts[0], parts[2]
    elif len(parts) == 1:
        lo = hi = parts[0]
    else:
        raise ArxivQueryError(
            f"Invalid date range: {_clip(value)} (expected [YYYYMMDDTTTT TO YYYYMMDDTTTT])"
        )
    start, end = _stamp(lo, end=False), _stamp(hi, end=True)
    if start is not None and end is not None and start >= end:
        raise ArxivQueryError(f"Invalid date range: {_clip(value)} (it ends before it starts)")
    return DateRange(field, start, end, f"{field}:[{lo} TO {hi}]")


def parse_search_query(text: str) -> Node | None:
    """The query's tree, or None for an empty query (no search_query). Raises
    `ArxivQueryError` for what the module docstring lists."""
    if len(text) > MAX_CHARS:
        raise ArxivQueryError(f"search_query is longer than {MAX_CHARS} characters")
    if "\x00" in text:
        raise ArxivQueryError("search_query contains a NUL character")
    tokens = _tokenize(text)
    if not tokens:
        return None
    parser = _Parser(tokens)
    node = parser.expr("all", 0)
    if parser.peek() is not None:  # only a ")" stops the top level early
        raise ArxivQueryError("Unmatched closing parenthesis")
    return node


# --- id_list ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedId:
    """One `id_list` item: `arxiv_id` None when arXiv's syntax holds but no id can exist."""

    raw: str
    arxiv_id: str | None
    version: int | None


def parse_id_list(text: str) -> list[ListedId]:
    """The comma-separated ids in order, repeats dropped, empty items ignored. An item that
    is not an arXiv id raises `ArxivQueryError` ("incorrect id format for X", as arXiv)."""
    out: list[ListedId] = []
    seen: set[str] = set()
    for item in text.split(","):
        raw = item.strip()
        if not raw or raw in seen:
            continue
        if not _ID_SYNTAX.fullmatch(raw):
            raise ArxivQueryError(f"incorrect id format for {_clip(raw)}")
        seen.add(raw)
        try:
            arxiv_id, version = parse_arxiv_id(raw)
        except InvalidArxivId:
            out.append(ListedId(raw, None, None))
            continue
        out.append(ListedId(raw, arxiv_id, version))
    return out
