"""The query parser: every syntax feature, odd input, and properties that hold for any text."""

from __future__ import annotations

import random
import sqlite3
from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.search.query import MAX_PHRASE_TOKENS, ParsedQuery, Term, index_tokens, parse_query
from tests.app.search.strategies import hostile_queries


def words(q: ParsedQuery) -> list[list[str]]:
    """Positive groups as plain strings, fields shown as prefixes: [["a"], ["b", "ti:c"]]."""
    return [[str(t) for t in group] for group in q.positive]


# --- tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Attention", ["attention"]),
        ("state-of-the-art", ["state", "of", "the", "art"]),
        ("GPT-4o", ["gpt", "4o"]),
        ("C++", ["c"]),
        ("++", []),
        ("snake_case", ["snake", "case"]),
        ("Schrödinger", ["schrödinger"]),
        ("x²", ["x²"]),
        ("深度学习", ["深度学习"]),
        ("a\x00b", ["a", "b"]),
        ("", []),
    ],
)
def test_index_tokens_split_like_unicode61(text: str, tokens: list[str]) -> None:
    assert index_tokens(text) == tokens


# Blocks complete long before Unicode 6.1 (FTS5's tables; characters assigned later are
# token characters to FTS5 whatever they are): Latin, Greek, Cyrillic, general
# punctuation and some CJK, with punctuation, symbols, spaces and controls between words.
_VOCAB_ALPHABET = st.one_of(
    st.characters(
        categories=("Lu", "Ll", "Nd", "No", "Po", "Pd", "Ps", "Pe", "Sm", "Sc", "Zs", "Cc"),
        max_codepoint=0x04FF,
    ),
    st.characters(min_codepoint=0x2000, max_codepoint=0x2064),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF),
)


@settings(max_examples=300, deadline=None)
@given(st.text(_VOCAB_ALPHABET, max_size=40))
def test_index_tokens_agree_with_fts5(text: str) -> None:
    """The Python tokenizer splits where SQLite's unicode61 does (same number of tokens,
    identical tokens for ASCII), so phrases the parser builds are phrases FTS5 finds."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 0')")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    db.execute("INSERT INTO t(rowid, x) VALUES (1, ?)", (text,))
    fts = [row[0] for row in db.execute('SELECT term FROM v ORDER BY "offset"')]
    ours = index_tokens(text)
    assert len(ours) == len(fts)
    if text.isascii():
        assert ours == fts


# --- syntax ----------------------------------------------------------------------------


def test_bare_words_are_all_required() -> None:
    q = parse_query("attention is all you need")
    assert words(q) == [["attention"], ["is"], ["all"], ["you"], ["need"]]
    assert q.has_positive_terms and not q.negative and not q.warnings


def test_quoted_phrase() -> None:
    q = parse_query('"large language models" survey')
    assert words(q) == [['"large language models"'], ["survey"]]
    assert q.positive[0][0].is_phrase


def test_typographic_quotes_and_unclosed_quote() -> None:
    assert words(parse_query("“state space” model")) == [['"state space"'], ["model"]]
    assert words(parse_query('model "state space')) == [["model"], ['"state space"']]


def test_hyphenated_and_punctuated_words_become_phrases() -> None:
    q = parse_query("state-of-the-art GPT-4o C++")
    assert words(q) == [["state-of-the-art"], ["gpt-4o"], ["c"]]
    assert [t.tokens for t in q.terms()] == [("state", "of", "the", "art"), ("gpt", "4o"), ("c",)]
    assert all(t.is_phrase and not t.quoted for t in list(q.terms())[:2])


def test_exclusions() -> None:
    q = parse_query('diffusion -survey -"image generation" -ti:review NOT benchmark')
    assert words(q) == [["diffusion"]]
    assert [str(t) for t in q.negative] == [
        "survey",
        '"image generation"',
        "ti:review",
        "benchmark",
    ]


def test_or_binds_tighter_than_and() -> None:
    q = parse_query("a b OR c")
    assert words(q) == [["a"], ["b", "c"]]
    q = parse_query("diffusion OR flow OR ti:score matching")
    assert words(q) == [["diffusion", "flow", "ti:score"], ["matching"]]


def test_lowercase_or_is_a_word_and_uppercase_and_is_a_no_op() -> None:
    assert words(parse_query("this or that")) == [["this"], ["or"], ["that"]]
    assert words(parse_query("this AND that")) == [["this"], ["that"]]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("ti:transformer", "title"),
        ("title:transformer", "title"),
        ("TI:transformer", "title"),
        ("au:transformer", "authors"),
        ("author:transformer", "authors"),
        ("abs:transformer", "abstract"),
        ("abstract:transformer", "abstract"),
    ],
)
def test_field_prefixes(text: str, field: str) -> None:
    (group,) = parse_query(text).positive
    assert group == (Term(("transformer",), field),)  # type: ignore[arg-type]


def test_field_applies_to_the_following_word_or_phrase_only() -> None:
    q = parse_query('ti:"neural radiance fields" nerf au: mildenhall')
    assert words(q) == [['ti:"neural radiance fields"'], ["nerf"], ["au:mildenhall"]]


def test_unknown_prefix_is_just_text() -> None:
    assert words(parse_query("foo:bar")) == [["foo-bar"]]  # a compound: "foo" then "bar"


def test_categories_are_canonicalised_and_archives_expanded() -> None:
    q = parse_query("cat:CS.lg cat:stat.ML,math.st")
    assert q.categories == ("cs.LG", "stat.ML", "math.ST")
    cs = parse_query("cat:cs").categories
    assert "cs.LG" in cs and "cs.CV" in cs and len(cs) > 30 and "math.AG" not in cs
    assert parse_query("cat:cs.*").categories == cs
    assert not parse_query("cat:cs").positive


def test_excluded_and_unknown_categories() -> None:
    q = parse_query("graphs -cat:cs.CV cat:foo.BAR")
    assert q.exclude_categories == ("cs.CV",)
    assert q.categories == ()
    assert "unknown category foo.BAR" in q.warnings
    assert words(q) == [["graphs"]]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("date:2025-08-01..2025-09-30", date(2025, 8, 1), date(2025, 9, 30)),
        ("date:2025-08-01..", date(2025, 8, 1), None),
        ("date:..2025-09-30", None, date(2025, 9, 30)),
        ("date:2025-08", date(2025, 8, 1), date(2025, 8, 31)),
        ("date:2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("date:2025", date(2025, 1, 1), date(2025, 12, 31)),
        ("date:2025-08-15", date(2025, 8, 15), date(2025, 8, 15)),
        ("date:2025-08..2025-09", date(2025, 8, 1), date(2025, 9, 30)),
        ("date:2025 date:..2025-03", date(2025, 1, 1), date(2025, 3, 31)),  # intersection
    ],
)
def test_date_ranges(text: str, start: date | None, end: date | None) -> None:
    q = parse_query(text)
    assert (q.date_from, q.date_to) == (start, end)
    assert not q.warnings


def test_invalid_dates_are_ignored_with_a_warning() -> None:
    q = parse_query("date:2025-13-40 date:yesterday date:.. graphs")
    assert (q.date_from, q.date_to) == (None, None)
    assert "ignored invalid date 2025-13-40" in q.warnings
    assert "ignored invalid date yesterday" in q.warnings
    assert words(q) == [["graphs"]]


def test_reversed_range_is_read_forwards() -> None:
    q = parse_query("date:2025-09-30..2025-08-01")
    assert (q.date_from, q.date_to) == (date(2025, 8, 1), date(2025, 9, 30))
    assert q.warnings


def test_filters_only_query() -> None:
    q = parse_query("cat:cs.LG date:2025")
    assert not q.has_positive_terms and q.has_filters and not q.is_empty


def test_duplicates_are_merged() -> None:
    q = parse_query("graph graph Graph -x -x")
    assert words(q) == [["graph"]] and len(q.negative) == 1


# --- odd input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "OR",
        'OR - -- ""',
        "-",
        "--",
        '"',
        '""',
        "ti:",
        "au: OR",
        "++",
        "\x00",
        "NOT",
        "AND OR NOT",
        "-cat:",
        "date:",
        "(((",
        "*",
        "^",
    ],
)
def test_nothing_usable(text: str) -> None:
    q = parse_query(text)
    assert q.is_empty and not q.has_positive_terms and not q.highlight_terms()


def test_dangling_operators_warn() -> None:
    assert "ignored OR without a search term on both sides" in parse_query("OR a").warnings
    assert "ignored OR without a search term on both sides" in parse_query("a OR").warnings
    assert "ignored ti: with nothing after it" in parse_query("a ti:").warnings
    q = parse_query("a OR -b")  # an exclusion cannot be an alternative
    assert words(q) == [["a"]] and [str(t) for t in q.negative] == ["b"]


def test_long_query_is_truncated() -> None:
    q = parse_query("graph " * 5000, max_chars=10_000)
    assert q.warnings[0] == "query truncated to 10000 characters"
    assert len(q.text) <= 10_000


def test_number_of_terms_is_capped() -> None:
    q = parse_query(" ".join(f"w{i}" for i in range(200)), max_terms=64)
    assert sum(len(g) for g in q.positive) == 64
    assert "query has more than 64 terms; ignored the rest" in q.warnings


def test_long_phrases_and_words_are_capped() -> None:
    q = parse_query('"' + " ".join(f"w{i}" for i in range(100)) + '"')
    assert len(q.positive[0][0].tokens) == MAX_PHRASE_TOKENS
    q = parse_query("x" * 500 + " graph")
    assert words(q) == [["graph"]] and q.warnings


def test_decomposed_accents_are_composed() -> None:
    assert parse_query("Schro\u0308dinger").highlight_terms() == ("schrödinger",)


def test_highlight_terms() -> None:
    q = parse_query('ti:"State Space" mamba OR S4 -survey cat:cs.LG mamba')
    assert q.highlight_terms() == ("state space", "mamba", "s4")


def test_canonical_form() -> None:
    q = parse_query('ti:"state space" mamba OR s4 -survey cat:cs.lg date:2025-08')
    assert q.canonical() == (
        'ti:"state space" mamba OR s4 -survey cat:cs.LG date:2025-08-01..2025-08-31'
    )


# --- properties ------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.text())
@example("\ud800")  # a lone surrogate, as a bad decoder might hand over
@example("\x00" * 20_000)
def test_parse_never_raises(text: str) -> None:
    q = parse_query(text)
    assert isinstance(q.warnings, list)
    for term in [*q.terms(), *q.negative]:
        assert term.tokens and all(term.tokens)


@settings(max_examples=500, deadline=None)
@given(hostile_queries())
def test_parse_never_raises_on_query_syntax(text: str) -> None:
    q = parse_query(text)
    # The canonical form means the same query.
    again = parse_query(q.canonical())
    assert again == q


def test_parse_random_10kb_queries() -> None:
    rng = random.Random(1234)
    alphabet = 'ab "-:.()*^OR\x00\u00e9\u4e00\U0001f600\n'
    for _ in range(20):
        text = "".join(rng.choice(alphabet) for _ in range(12_000))
        q = parse_query(text)
        assert q.text and len(q.text) <= 10_000
        assert sum(len(g) for g in q.positive) + len(q.negative) <= 64
