"""LaTeX text macros read into a tree (pages) and cleaned to plain text (feeds)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.ingest.tex_macros import NBSP, Footnote, Link, Styled, parse, plain


def test_styles_nest_and_bare_braces_inside_them_go() -> None:
    assert parse(r"We \emph{really} use \textbf{bold \textit{and {nested}} text}.") == (
        "We ",
        Styled("em", ("really",)),
        " use ",
        Styled("strong", ("bold ", Styled("em", ("and nested",)), " text")),
        ".",
    )


def test_links_only_for_http() -> None:
    assert parse(r"\url{https://a.org/x} and \href{http://b.org}{the site}") == (
        Link("https://a.org/x", ("https://a.org/x",)),
        " and ",
        Link("http://b.org", ("the site",)),
    )
    # Any other scheme: the text alone, never a link.
    assert parse(r"\href{javascript:alert(1)}{click} \url{file:///etc/passwd}") == (
        "click file:///etc/passwd",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"as shown~\cite{smith2020}, and \citep[p.~3]{a,b}.", "as shown, and."),
        (r"Fig.~3 costs ~10\% less", f"Fig.{NBSP}3 costs ~10% less"),
        ("pages 1--2 --- or three", "pages 1\u20132 \u2014 or three"),
        (r"R\&D at 5\$ and a\_b \#1", "R&D at 5$ and a_b #1"),
        # Dashes and ties inside a URL are the URL's.
        ("see https://x.org/~me/a--b.", "see https://x.org/~me/a--b."),
        (r"\emph{unclosed", r"\emph{unclosed"),  # shown as written
        (r"\alpha and \unknown{x}", r"\alpha and \unknown{x}"),
        (
            r"models\footnote{Code: \url{https://g.com/a}.} win",
            "models (Code: https://g.com/a.) win",
        ),
        (r"\href{https://a.org}{text}", "text (https://a.org)"),
        (r"$\emph{x}$ stays math, \emph{y} does not", r"$\emph{x}$ stays math, y does not"),
        ("no macros at all", "no macros at all"),
    ],
)
def test_plain_text(text: str, expected: str) -> None:
    assert plain(text) == expected


def test_a_footnote_is_a_node() -> None:
    assert parse(r"a\footnote{b}") == ("a", Footnote(("b",)))


def test_deep_nesting_is_bounded() -> None:
    text = r"\emph{" * 500 + "x" + "}" * 500
    assert "x" in plain(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "\\emph{",
                    "\\textbf{",
                    "\\href{",
                    "\\url{",
                    "\\footnote{",
                    "\\cite[",
                    "]",
                    "{",
                    "}",
                    "~",
                    "--",
                    "---",
                    "$",
                    "\\",
                    "https://a.b/",
                    "javascript:",
                    "<script>",
                ]
            ),
            st.text(max_size=5),
        ),
        max_size=30,
    ).map("".join)
)
def test_any_text_parses(text: str) -> None:
    assert isinstance(plain(text), str)
    for node in parse(text):
        if isinstance(node, Link):
            assert node.url.lower().startswith(("http://", "https://"))
