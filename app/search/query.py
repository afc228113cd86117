"""The one search-query parser shared by the site, the JSON API and the CLI.

Syntax (terms separated by whitespace):

    attention transformer        both words (implicit AND)
    "state space model"          a phrase: the words adjacent, in this order
    -survey  -"large language"   exclude papers with that word / phrase
    diffusion OR flow matching   OR binds tighter than AND: diffusion-or-flow, and matching
    ti:word  title:"a phrase"    in the title; au:/author: in the authors, abs:/abstract:
    -au:smith                    exclusion restricted to a field
    cat:cs.LG  cat:cs            only papers listed in the category (an archive = all of its
                                 categories); several cat: terms mean any of them
    -cat:cs.CV                   not listed in that category
    date:2025-08-01..2025-09-30  announced in the range (inclusive); open ends
    date:2025-08-01..  date:..2025-09-30  date:2025-08  date:2025  date:2025-08-15
    has:tldr  -has:tldr          only papers with (without) a machine-written TL;DR
    has:code  -has:code          only papers that link (do not link) their code
    AND / NOT                    accepted as no-op / as `-` for people used to boolean syntax

Words are split into index tokens exactly where SQLite's FTS5 `unicode61` tokenizer splits
them (letters, digits and private-use characters are word characters; everything else is a
separator), so `state-of-the-art` is the phrase "state of the art", `GPT-4o` is "gpt 4o" and
`C++` is "c". Both search backends compile only these tokens, never raw user text.

`parse_query` never raises: odd input becomes warnings, not errors.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Literal

Field = Literal["title", "authors", "abstract"]

MAX_CHARS = 10_000
MAX_TERMS = 64
# Longer phrases add nothing to precision and nest deeply in a PostgreSQL tsquery.
MAX_PHRASE_TOKENS = 32
# No real word is this long; PostgreSQL also refuses lexemes over 2047 bytes.
MAX_TOKEN_CHARS = 100
MAX_WARNINGS = 20
#: Words that carry no topic (Lucene's English stop words, plus "we"): a natural-language
#: query neither ranks nor highlights them when it has other words.
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "will",
        "with",
    ]
)
# Echoing a 10 kB garbage value back in a warning helps nobody.
_WARN_VALUE_CHARS = 60

_FIELDS: dict[str, Field | Literal["cat", "date", "has"]] = {
    "ti": "title",
    "title": "title",
    "au": "authors",
    "author": "authors",
    "authors": "authors",
    "abs": "abstract",
    "abstract": "abstract",
    "cat": "cat",
    "category": "cat",
    "date": "date",
    "has": "has",
}
_FIELD_PREFIX = re.compile(r"(?i)(" + "|".join(sorted(_FIELDS, key=len, reverse=True)) + r"):")
_SHORT_FIELD = {"title": "ti", "authors": "au", "abstract": "abs"}
# Straight and typographic double quotes: phones type the latter.
_QUOTES = frozenset('"“”„')
_DASHES = frozenset("-\u2212")  # ASCII hyphen-minus and the minus sign
_DATE_PART = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")


@lru_cache(maxsize=4096)
def _is_token_char(ch: str) -> bool:
    # unicode61's default token categories are L*, N* and Co. Combining diacritics
    # (U+0300-U+036F) also stay inside a token there: with remove_diacritics they are folded
    # away, not treated as separators. (FTS5's tables are Unicode 6.1; characters assigned
    # since may be classified differently -- a harmless mismatch for real queries.)
    cat = unicodedata.category(ch)
    return cat[0] in "LN" or cat == "Co" or "\u0300" <= ch <= "\u036f"


def index_tokens(text: str) -> list[str]:
    """Split text into lower-cased index tokens the way FTS5's unicode61 tokenizer does.

    Diacritics are kept (PostgreSQL's index keeps them; FTS5 folds them itself)."""
    tokens: list[str] = []
    start = -1
    for i, ch in enumerate(text):
        if _is_token_char(ch):
            if start < 0:
                start = i
        elif start >= 0:
            tokens.append(text[start:i].lower())
            start = -1
    if start >= 0:
        tokens.append(text[start:].lower())
    return tokens


@dataclass(frozen=True, slots=True)
class Term:
    """A word (one token) or a phrase (several adjacent tokens), optionally in one field."""

    tokens: tuple[str, ...]
    field: Field | None = None
    # Typed in quotes: a natural-language query keeps it required (app.search.fulltext).
    quoted: bool = False

    @property
    def is_phrase(self) -> bool:
        return len(self.tokens) > 1

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    def __str__(self) -> str:
        # A compound typed with hyphens (or other separators) reads back the same.
        body = f'"{self.text}"' if self.quoted else "-".join(self.tokens)
        return f"{_SHORT_FIELD[self.field]}:{body}" if self.field else body


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A parsed query.

    `positive` is an AND of OR-groups: every group must match, and a group matches when any
    of its terms does. `negative` terms exclude a paper when any of them matches.
    `categories` (any of them) and `exclude_categories` hold canonical category ids;
    `date_from`/`date_to` are inclusive bounds on the paper's sort date.
    """

    positive: tuple[tuple[Term, ...], ...] = ()
    negative: tuple[Term, ...] = ()
    categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    # has:tldr (True) / -has:tldr (False): only papers with / without a TL;DR.
    has_tldr: bool | None = None
    # has:code (True) / -has:code (False): only papers with / without a code link.
    has_code: bool | None = None
    warnings: list[str] = field(default_factory=list, hash=False, compare=False)
    text: str = field(default="", compare=False)  # the input, after truncation
    # OR or AND typed: every group is required, as typed. Without them the query is natural
    # language: the full-text index makes its plain words optional.
    explicit_operators: bool = False

    @property
    def has_positive_terms(self) -> bool:
        return bool(self.positive)

    @property
    def has_filters(self) -> bool:
        return bool(
            self.categories
            or self.exclude_categories
            or self.date_from is not None
            or self.date_to is not None
            or self.has_tldr is not None
            or self.has_code is not None
        )

    @property
    def is_empty(self) -> bool:
        """Nothing usable at all: no terms, no exclusions, no filters."""
        return not (self.positive or self.negative or self.has_filters)

    def terms(self) -> Iterator[Term]:
        """Every positive term, in query order."""
        for group in self.positive:
            yield from group

    def highlight_terms(self) -> tuple[str, ...]:
        """The positive words and phrases to highlight in results, in query order, without
        duplicates. Each is in index-token form (lower case, a phrase's tokens joined by one
        space), so a highlighter should match tokens separated by any non-word characters."""
        terms = list(self.terms())
        if not self.explicit_operators:
            topical = [t for t in terms if t.quoted or t.field or t.text not in STOP_WORDS]
            terms = topical or terms
        return tuple(dict.fromkeys(t.text for t in terms))

    def canonical(self) -> str:
        """The query rewritten in canonical syntax; parsing it gives the same query."""
        parts = [" OR ".join(str(t) for t in group) for group in self.positive]
        if self.explicit_operators and not any(len(g) > 1 for g in self.positive):
            # Keep the typed AND: it is what makes every word required.
            parts = [" AND ".join(parts) if len(parts) > 1 else " ".join([*parts, "AND"])]
        parts += [f"-{t}" for t in self.negative]
        # One cat: term per set, so the canonical form never has more terms than the input.
        if self.categories:
            parts.append("cat:" + ",".join(self.categories))
        if self.exclude_categories:
            parts.append("-cat:" + ",".join(self.exclude_categories))
        if self.date_from is not None or self.date_to is not None:
            lo = self.date_from.isoformat() if self.date_from else ""
            hi = self.date_to.isoformat() if self.date_to else ""
            parts.append(f"date:{lo}..{hi}")
        if self.has_tldr is not None:
            parts.append("has:tldr" if self.has_tldr else "-has:tldr")
        if self.has_code is not None:
            parts.append("has:code" if self.has_code else "-has:code")
        return " ".join(parts)


# --- lexing ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    negated: bool
    prefix: str | None  # the field prefix as typed, lower-cased ("ti", "cat", ...)
    value: str
    quoted: bool

    @property
    def kind(self) -> Field | Literal["cat", "date", "has"] | None:
        return _FIELDS[self.prefix] if self.prefix else None

    def is_operator(self, name: str) -> bool:
        return not (self.negated or self.prefix or self.quoted) and self.value == name


def _lex(text: str) -> list[_Item]:
    items: list[_Item] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = False
        while i < n and text[i] in _DASHES:
            negated = True
            i += 1
        prefix = None
        match = _FIELD_PREFIX.match(text, i)
        if match:
            prefix = match.group(1).lower()
            i = match.end()
        if i < n and text[i] in _QUOTES:
            end = i + 1
            while end < n and text[end] not in _QUOTES:
                end += 1
            items.append(_Item(negated, prefix, text[i + 1 : end], quoted=True))
            i = end + 1  # past the closing quote; an unclosed phrase runs to the end
            continue
        end = i
        while end < n and not text[end].isspace() and text[end] not in _QUOTES:
            end += 1
        value = text[i:end]
        if value or prefix or negated:
            items.append(_Item(negated, prefix, value, quoted=False))
        i = end
    return items


# --- dates -----------------------------------------------------------------------------


def _period(value: str) -> tuple[date, date] | None:
    """First and last day of `YYYY`, `YYYY-MM` or `YYYY-MM-DD`; None when invalid."""
    match = _DATE_PART.fullmatch(value)
    if not match:
        return None
    year = int(match.group(1))
    month = int(match.group(2)) if match.group(2) else None
    day = int(match.group(3)) if match.group(3) else None
    try:
        if month is None:
            return date(year, 1, 1), date(year, 12, 31)
        if day is None:
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        one = date(year, month, day)
        return one, one
    except (ValueError, calendar.IllegalMonthError):
        return None


def _clip(value: str) -> str:
    value = "".join(ch if ch.isprintable() else "\ufffd" for ch in value[: _WARN_VALUE_CHARS + 1])
    return value if len(value) <= _WARN_VALUE_CHARS else value[:_WARN_VALUE_CHARS] + "…"


# --- parsing ---------------------------------------------------------------------------


class _Builder:
    def __init__(self, max_terms: int) -> None:
        self.max_terms = max_terms
        self.groups: list[list[Term]] = []
        self.negative: list[Term] = []
        self.categories: list[str] = []
        self.exclude_categories: list[str] = []
        self.date_from: date | None = None
        self.date_to: date | None = None
        self.has_tldr: bool | None = None
        self.has_code: bool | None = None
        self.warnings: list[str] = []
        self.count = 0

    def warn(self, message: str) -> None:
        if message not in self.warnings and len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def room(self) -> bool:
        if self.count >= self.max_terms:
            self.warn(f"query has more than {self.max_terms} terms; ignored the rest")
            return False
        self.count += 1
        return True

    def term(self, item: _Item) -> Term | None:
        tokens = index_tokens(item.value)
        if any(len(t) > MAX_TOKEN_CHARS for t in tokens):
            self.warn(f"ignored words longer than {MAX_TOKEN_CHARS} characters")
            tokens = [t for t in tokens if len(t) <= MAX_TOKEN_CHARS]
        if len(tokens) > MAX_PHRASE_TOKENS:
            self.warn(f"phrase truncated to {MAX_PHRASE_TOKENS} words")
            tokens = tokens[:MAX_PHRASE_TOKENS]
        if not tokens:
            return None  # punctuation only ("++", "-", '""'): nothing to search for
        kind = item.kind
        return Term(
            tuple(tokens),
            kind if kind in ("title", "authors", "abstract") else None,
            quoted=item.quoted,
        )

    def category(self, item: _Item) -> None:
        from app.taxonomy import get_taxonomy

        taxonomy = get_taxonomy()
        for raw in item.value.split(","):
            token = raw.strip()
            if not token:
                continue
            if token.endswith(".*"):  # "cs.*" reads naturally as "the whole archive"
                token = token[:-2]
            found = taxonomy.expand(token)
            if not found:
                self.warn(f"unknown category {_clip(token)}")
                continue
            target = self.exclude_categories if item.negated else self.categories
            target.extend(c for c in found if c not in target)

    def has(self, item: _Item) -> None:
        value = item.value.strip().lower().replace(";", "")
        if value == "code":
            self.has_code = not item.negated
            return
        if value not in ("tldr", "tl;dr", "summary"):
            self.warn(f"ignored has:{_clip(item.value)} (only has:tldr and has:code are known)")
            return
        self.has_tldr = not item.negated

    def dates(self, item: _Item) -> None:
        value = item.value.strip()
        if item.negated:
            self.warn(f"ignored -date:{_clip(value)} (dates cannot be excluded)")
            return
        lo_text, sep, hi_text = value.partition("..")
        if not sep:
            hi_text = lo_text  # one period: its first through its last day
        lo = _period(lo_text) if lo_text else None
        hi = _period(hi_text) if hi_text else None
        for part, parsed in ((lo_text, lo), (hi_text, hi)):
            if part and parsed is None:
                self.warn(f"ignored invalid date {_clip(part)}")
                return
        if lo is None and hi is None:
            self.warn(f"ignored invalid date {_clip(value) or '(empty)'}")
            return
        start = lo[0] if lo else None
        end = hi[1] if hi else None
        if lo and hi and lo[0] > hi[1]:
            self.warn(f"reversed date range {_clip(value)} read as {hi_text}..{lo_text}")
            start, end = hi[0], lo[1]
        # Several date terms all apply: keep their intersection.
        if start and (self.date_from is None or start > self.date_from):
            self.date_from = start
        if end and (self.date_to is None or end < self.date_to):
            self.date_to = end


def parse_query(
    text: str, *, max_chars: int = MAX_CHARS, max_terms: int = MAX_TERMS
) -> ParsedQuery:
    """Parse a user's search text. Never raises; problems become `warnings`."""
    if not isinstance(text, str):  # a caller bug, but "never raises" is the contract
        text = "" if text is None else str(text)
    b = _Builder(max(1, max_terms))
    if len(text) > max_chars:
        text = text[: max(0, max_chars)]
        b.warn(f"query truncated to {max_chars} characters")
    # Composed form, so "o" + combining diaeresis typed on some keyboards matches "ö".
    text = unicodedata.normalize("NFC", text)

    items = _lex(text)
    pending_or = False  # an OR waits for the next positive term
    last_positive = False  # the previous term was positive, so an OR may follow it
    negate_next = False
    explicit = False
    i = 0
    while i < len(items):
        item = items[i]
        i += 1
        if item.is_operator("OR"):
            explicit = True
            if last_positive:
                pending_or = True
            else:
                b.warn("ignored OR without a search term on both sides")
            continue
        if item.is_operator("AND"):
            explicit = True
            continue
        if item.is_operator("NOT"):
            negate_next = True
            continue
        if negate_next:
            item.negated, negate_next = True, False
        if item.prefix and not item.value and not item.quoted:
            # "ti: word" -- the field takes the next word or phrase when there is one.
            nxt = items[i] if i < len(items) else None
            if (
                nxt is None
                or nxt.prefix
                or nxt.negated
                or any(nxt.is_operator(op) for op in ("OR", "AND", "NOT"))
            ):
                b.warn(f"ignored {item.prefix}: with nothing after it")
                continue
            item.value, item.quoted = nxt.value, nxt.quoted
            i += 1
        if item.kind in ("cat", "date", "has"):
            if b.room():
                {"cat": b.category, "date": b.dates, "has": b.has}[item.kind](item)
            continue  # filters neither continue nor break an OR chain
        term = b.term(item)
        if term is None or not b.room():
            continue
        if item.negated:
            if pending_or:
                b.warn("ignored OR without a search term on both sides")
            b.negative.append(term)
            pending_or = last_positive = False
        elif pending_or and b.groups:
            b.groups[-1].append(term)
            pending_or, last_positive = False, True
        else:
            b.groups.append([term])
            last_positive = True
    if pending_or:
        b.warn("ignored OR without a search term on both sides")
    if negate_next:
        b.warn("ignored NOT with nothing after it")

    if b.date_from and b.date_to and b.date_from > b.date_to:
        b.warn("the date terms do not overlap; nothing can match")
    query = ParsedQuery(
        positive=tuple(dict.fromkeys(tuple(dict.fromkeys(g)) for g in b.groups)),
        negative=tuple(dict.fromkeys(b.negative)),
        categories=tuple(b.categories),
        exclude_categories=tuple(b.exclude_categories),
        date_from=b.date_from,
        date_to=b.date_to,
        has_tldr=b.has_tldr,
        has_code=b.has_code,
        warnings=b.warnings,
        text=text,
        explicit_operators=explicit,
    )
    if query.is_empty and text.strip():
        query.warnings.append("nothing to search for in the query")
    return query
