from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ingest.text import (
    clean_text,
    decode_tex_accents,
    parse_iso_datetime,
    parse_rfc2822,
    repair_mojibake,
    split_authors,
    strip_xml_illegal,
    title_key,
    uninvert_name,
)


@pytest.mark.parametrize(
    ("tex", "text"),
    [
        (r"Schr\"odinger", "Schrödinger"),
        (r"Schr{\"o}dinger", "Schrödinger"),
        (r"Schr\"{o}dinger", "Schrödinger"),
        (r"\'{e}t\'e", "été"),
        (r"\`a la", "à la"),
        (r"c\^ote", "côte"),
        (r"Espa\~na", "España"),
        (r"Fran\c{c}ois", "François"),
        (r"Fran\c cois", "François"),
        (r"\v{S}koda", "Škoda"),
        (r"Erd\H{o}s", "Erdős"),
        (r"\u{a}", "ă"),
        (r"\=a", "ā"),
        (r"\.z", "ż"),
        (r"\aa", "å"),
        (r"{\AA}ngstr\"om", "Ångström"),
        (r"\AA{}ngstr\"om", "Ångström"),
        (r"Bj{\o}rn", "Bjørn"),
        (r"\O", "Ø"),
        (r"Stra\ss e", "Straße"),
        (r"\l{}\'od\'z", "łódź"),
        (r"\L", "Ł"),
        (r"\ae", "æ"),
        (r"\oe uvre", "œuvre"),
        (r"{\i}", "ı"),
        (r"Mart{\'\i}nez", "Martínez"),
        (r"Dvo\v{r}\'ak", "Dvořák"),
        (r"Q\&A", "Q&A"),
    ],
)
def test_tex_accents_decode(tex: str, text: str) -> None:
    assert clean_text(tex) == text


@pytest.mark.parametrize(
    "math",
    [
        r"$\hat{x}$",
        r"$\"a$",
        r"$$\bar{u}\'$$",
        r"\(\"a\)",
        r"\[\v{x}\]",
        r"$\mathcal{O}(n \log n)$",
    ],
)
def test_math_is_left_alone(math: str) -> None:
    assert clean_text(f'Schr\\"odinger on {math} too') == f"Schrödinger on {math} too"


def test_other_macros_and_escaped_dollars_stay() -> None:
    assert clean_text(r"\vec{v} \url{x} \cdot c \emph{y}") == r"\vec{v} \url{x} \cdot c \emph{y}"
    assert clean_text(r"costs \$5 in Z\"urich \$") == r"costs \$5 in Zürich \$"


def test_clean_text_collapses_hard_breaks() -> None:
    wrapped = "  We describe a new\nalgorithm, the\n  pebble game.\n"
    assert clean_text(wrapped) == "We describe a new algorithm, the pebble game."
    assert clean_text("a\tb\r\nc\xa0\xa0d") == "a b c d"
    assert clean_text("plain") == "plain"
    assert clean_text("") == ""


@given(st.text(max_size=200))
def test_clean_text_is_split_join_of_decoded(s: str) -> None:
    # The fast paths must agree with the obvious definition.
    assert clean_text(s) == " ".join(strip_xml_illegal(decode_tex_accents(s)).split())


def test_clean_text_removes_what_xml_forbids_and_keeps_the_rest() -> None:
    assert (
        clean_text("Deep\x00 nets \x02for\x1f NUL\ufffe\uffff \ud800text")
        == "Deep nets for NUL text"
    )
    assert clean_text("a \x00 b") == "a b"


def _xml_char(c: str) -> bool:
    """XML 1.0's Char production."""
    return (
        c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"
    )


@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=200))
def test_strip_xml_illegal_keeps_exactly_the_xml_characters(s: str) -> None:
    assert strip_xml_illegal(s) == "".join(c for c in s if _xml_char(c))


@given(st.text(st.characters(max_codepoint=0x7F), min_size=50, max_size=300))
def test_strip_xml_illegal_on_long_ascii(s: str) -> None:
    # Long ASCII text takes its own path.
    assert strip_xml_illegal(s) == "".join(c for c in s if _xml_char(c))


@given(st.text(max_size=200))
def test_decode_is_identity_without_backslash(s: str) -> None:
    if "\\" not in s:
        assert decode_tex_accents(s) == s


def test_title_key_matches_equivalent_titles() -> None:
    assert (
        title_key(r"Schr{\"o}dinger's Cat!")
        == title_key("schrodingers  cat")
        == ("schrodingers cat")
    )
    assert title_key("Attention Is All You Need") == title_key("attention is all you need.")
    assert title_key("{BERT}: Pre-training of Deep") == title_key("BERT - pre training of deep")
    assert title_key(r"$\ell_1$-regression") == "ell 1 regression"
    assert title_key("Graph Neural Networks") != title_key("Graph Neural Network")


@pytest.mark.parametrize(
    ("tex", "plain"),
    [
        (r"\textsc{SimInstruct}: A Responsible Tool", "SimInstruct: a responsible tool"),
        (r"What if I ask in \textit{alia lingua}?", "What if I ask in alia lingua?"),
        (
            r"\emph{Sparse} attention for \textbf{long} documents",
            "Sparse attention for long documents",
        ),
        (r"$\text{S}^2$Q-VDiT: Accurate", "S$^2$Q-VDiT: Accurate"),
        (r"$\mathbf{x}$-prediction \textsl{and} more", "x-prediction and more"),
    ],
)
def test_title_key_ignores_styling_commands(tex: str, plain: str) -> None:
    assert title_key(tex) == title_key(plain)


def test_title_key_keeps_commands_that_are_words() -> None:
    assert title_key(r"\LaTeX{} rendering") == "latex rendering"
    assert title_key(r"$\alpha$-divergences") == "alpha divergences"
    assert title_key(r"\textsomething{x}") == "textsomething x"  # not a styling command


def test_split_authors() -> None:
    assert split_authors("A. Smith, B. Jones and C. Lee (MIT)") == [
        "A. Smith",
        "B. Jones",
        "C. Lee",
    ]
    assert split_authors("A. Smith, B. Jones, and C. Lee") == ["A. Smith", "B. Jones", "C. Lee"]
    assert split_authors(r"C. Bal\'azs, C.-P. Yuan") == ["C. Balázs", "C.-P. Yuan"]
    assert split_authors("John Smith, Jr., Ann Lee") == ["John Smith Jr.", "Ann Lee"]
    assert split_authors("ATLAS Collaboration") == ["ATLAS Collaboration"]
    assert split_authors("") == []


def test_uninvert_name() -> None:
    assert uninvert_name("Li, Chuankun") == "Chuankun Li"
    assert uninvert_name("Smith Jr, John") == "John Smith Jr"
    assert uninvert_name("ATLAS Collaboration") == "ATLAS Collaboration"


def test_repair_mojibake() -> None:
    assert repair_mojibake("Aurora RamÃ\xadrez") == "Aurora Ramírez"
    assert repair_mojibake("Dirk WÃ¼bben") == "Dirk Wübben"
    assert repair_mojibake("Café") == "Café"  # genuine Latin-1 text stays
    assert repair_mojibake("Ã alone") == "Ã alone"


def test_dates() -> None:
    assert parse_rfc2822("Mon, 2 Apr 2007 19:18:42 GMT") == datetime(
        2007, 4, 2, 19, 18, 42, tzinfo=UTC
    )
    assert parse_rfc2822("Fri, 23 Feb 2024 00:00:00 -0500") == datetime(2024, 2, 23, 5, tzinfo=UTC)
    assert parse_rfc2822("Mon, 31 Feb 2007 19:18:42 GMT") is None
    assert parse_rfc2822("yesterday") is None
    assert parse_rfc2822(None) is None
    assert parse_iso_datetime("2017-07-27T08:18:33Z") == datetime(
        2017, 7, 27, 8, 18, 33, tzinfo=UTC
    )
    assert parse_iso_datetime("2014-01-09") == datetime(2014, 1, 9, tzinfo=UTC)
    assert parse_iso_datetime("2024-08-23T00:00:00-04:00") == datetime(2024, 8, 23, 4, tzinfo=UTC)
    assert parse_iso_datetime("not a date") is None
