"""arXiv's search_query grammar and id_list: precedence, fields, phrases, ranges, limits, and
odd input (an `ArxivQueryError` for the error feed, never anything else)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.search.arxiv_query import (
    MAX_DEPTH,
    MAX_TERMS,
    And,
    AndNot,
    ArxivQueryError,
    Category,
    DateRange,
    Identifier,
    Node,
    Nothing,
    Or,
    Text,
    parse_id_list,
    parse_search_query,
    render,
)
from tests.app.search.strategies import hostile_queries


def shape(node: Node | None) -> object:
    """The tree as nested tuples: ("AND", a, b), ("OR", …), ("ANDNOT", a, b), "ti:word"."""
    if isinstance(node, And):
        return ("AND", *(shape(c) for c in node.children))
    if isinstance(node, Or):
        return ("OR", *(shape(c) for c in node.children))
    if isinstance(node, AndNot):
        return ("ANDNOT", shape(node.left), shape(node.right))
    if isinstance(node, Text):
        return f"{node.field}:{' '.join(node.tokens)}"
    assert node is not None
    return node.raw


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("electron", "all:electron"),
        ("ti:a AND ti:b", ("AND", "ti:a", "ti:b")),
        # AND binds tighter than OR, on either side (Lucene's precedence, as arXiv's).
        ("ti:a OR ti:b AND ti:c", ("OR", "ti:a", ("AND", "ti:b", "ti:c"))),
        ("ti:a AND ti:b OR ti:c", ("OR", ("AND", "ti:a", "ti:b"), "ti:c")),
        # AND and ANDNOT share a level and group left to right.
        ("ti:a ANDNOT ti:b AND ti:c", ("AND", ("ANDNOT", "ti:a", "ti:b"), "ti:c")),
        ("ti:a AND ti:b ANDNOT ti:c", ("ANDNOT", ("AND", "ti:a", "ti:b"), "ti:c")),
        ("ti:a AND NOT ti:b", ("ANDNOT", "ti:a", "ti:b")),
        ("ti:a NOT ti:b", ("ANDNOT", "ti:a", "ti:b")),
        # Side by side means OR.
        ("ti:a ti:b", ("OR", "ti:a", "ti:b")),
        ("ti:a ti:b AND ti:c", ("OR", "ti:a", ("AND", "ti:b", "ti:c"))),
        # Parentheses group; a field before them applies inside.
        ("(ti:a OR ti:b) AND ti:c", ("AND", ("OR", "ti:a", "ti:b"), "ti:c")),
        ("ti:(space time)", ("OR", "ti:space", "ti:time")),
        ("ti:(space AND (apple OR au:time))", ("AND", "ti:space", ("OR", "ti:apple", "au:time"))),
        (
            "au:del_maestro ANDNOT (ti:checkerboard OR ti:Pyrochlore)",
            ("ANDNOT", "au:del maestro", ("OR", "ti:checkerboard", "ti:pyrochlore")),
        ),
        (
            'au:del_maestro AND ti:"quantum criticality"',
            ("AND", "au:del maestro", "ti:quantum criticality"),
        ),
        # Lower-case operators are words; `+` is a space, as in arXiv's URLs.
        ("ti:a and ti:b", ("OR", "ti:a", "all:and", "ti:b")),
        ("au:del_maestro+AND+ti:checkerboard", ("AND", "au:del maestro", "ti:checkerboard")),
        ("abs:GPT-4o", "abs:gpt 4o"),
        ('co:"accepted at ICLR"', "co:accepted at iclr"),
    ],
)
def test_precedence_and_fields(query: str, expected: object) -> None:
    assert shape(parse_search_query(query)) == expected


def test_categories_ids_and_ranges() -> None:
    cat = parse_search_query("cat:cs.LG")
    assert isinstance(cat, Category) and cat.categories == ("cs.LG",)
    archive = parse_search_query("cat:cs.*")
    assert isinstance(archive, Category) and {"cs.AI", "cs.LG", "cs.CL"} <= set(archive.categories)
    # An alias resolves; an unknown category matches nothing (no error, as on arXiv).
    alias = parse_search_query("cat:cs.NA")
    assert isinstance(alias, Category) and alias.categories == ("math.NA",)
    assert isinstance(parse_search_query("cat:xx.YY"), Nothing)
    ident = parse_search_query("id:2301.00001v2")
    assert isinstance(ident, Identifier) and ident.arxiv_id == "2301.00001"
    assert isinstance(parse_search_query("id:nonsense"), Nothing)
    assert isinstance(parse_search_query("rn:CERN-TH-2001"), Nothing)
    assert isinstance(parse_search_query('ti:"!!!"'), Nothing)

    rng = parse_search_query("submittedDate:[202301010600 TO 202301030600]")
    assert isinstance(rng, DateRange) and rng.field == "submittedDate"
    assert rng.start == datetime(2023, 1, 1, 6, 0, tzinfo=UTC)
    # The upper end is inclusive to the minute written.
    assert rng.end == datetime(2023, 1, 3, 6, 1, tzinfo=UTC)
    days = parse_search_query('lastUpdatedDate:"20230101 TO 20230131"')
    assert isinstance(days, DateRange) and days.field == "lastUpdatedDate"
    assert days.end == datetime(2023, 2, 1, tzinfo=UTC)
    open_end = parse_search_query("submittedDate:[20230101 TO *]")
    assert isinstance(open_end, DateRange) and open_end.end is None


def test_render_is_canonical_and_reparses() -> None:
    node = parse_search_query('electron ti:(a OR b) AND au:"del maestro" ANDNOT cat:cs.CV')
    assert node is not None
    text = render(node)
    assert text == 'all:electron OR (((ti:a OR ti:b) AND au:"del maestro") ANDNOT cat:cs.CV)'
    assert shape(parse_search_query(text)) == shape(node)


@pytest.mark.parametrize("query", ["", "   ", "+++"])
def test_empty_query_is_none(query: str) -> None:
    assert parse_search_query(query) is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('ti:"unclosed', "Quotation does not close"),
        ("foo:bar", "Invalid field: foo"),
        ("AND ti:a", "cannot start with an operator"),
        ("ti:a AND", "ends with an operator"),
        ("ti:a AND OR ti:b", "2 consecutive operators"),
        ("(ti:a", "Parenthesis does not close"),
        ("ti:a)", "Unmatched closing parenthesis"),
        ("()", "Empty parentheses"),
        ("ti:", "has no value"),
        ("ti:[a TO b]", "needs submittedDate"),
        ("submittedDate:[2023 TO 2024]", "Invalid date"),
        ("submittedDate:[20231301 TO 20240101]", "Invalid date"),
        ("submittedDate:[20240101 TO 20230101]", "ends before it starts"),
        ("submittedDate:[20240101 202401]", "Invalid date range"),
        ("submittedDate:[20240101 TO 20240102", "Range does not close"),
        ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), "nests parentheses"),
        (" OR ".join(f"w{i}" for i in range(MAX_TERMS + 1)), f"more than {MAX_TERMS} terms"),
        ("a" * 10_001, "longer than"),
        ("ti:a\x00", "NUL"),
    ],
)
def test_bad_queries_say_why(query: str, message: str) -> None:
    with pytest.raises(ArxivQueryError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_search_query(query)


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostile_queries(), st.text(max_size=300)))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        node = parse_search_query(text)
    except ArxivQueryError as exc:
        assert str(exc)
        return
    if node is not None:
        # A parsed query renders to text that parses to the same tree.
        assert shape(parse_search_query(render(node))) == shape(node)


def test_id_list_keeps_order_and_drops_repeats() -> None:
    items = parse_id_list("2601.00002, 2601.00001v1,,2601.00002,hep-th/9901001v2,0808.05394")
    assert [(i.arxiv_id, i.version) for i in items] == [
        ("2601.00002", None),
        ("2601.00001", 1),
        ("hep-th/9901001", 2),
        # Well-formed but never issued (5 digits before 1501): simply not found, as on arXiv.
        (None, None),
    ]


@pytest.mark.parametrize("bad", ["abc", "1234", "2601.00001v", "arXiv:2601.00001", "<b>"])
def test_id_list_refuses_what_arxiv_refuses(bad: str) -> None:
    with pytest.raises(ArxivQueryError, match=f"incorrect id format for {bad}"):
        parse_id_list(f"2601.00001,{bad}")
