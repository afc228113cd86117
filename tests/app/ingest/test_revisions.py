"""The word-level diff between two versions' text: pure functions."""

from __future__ import annotations

import pytest

from app.ingest.revisions import (
    DELETED,
    EQUAL,
    INSERTED,
    changes,
    to_html,
    tokens,
    word_diff,
)


def sides(ops: list[tuple[str, str]]) -> tuple[str, str]:
    old = "".join(t for op, t in ops if op != INSERTED)
    new = "".join(t for op, t in ops if op != DELETED)
    return old, new


def test_tokens_split_words_punctuation_and_spaces() -> None:
    assert tokens("Results: 95.3% (v2).") == [
        "Results",
        ":",
        " ",
        "95",
        ".",
        "3",
        "%",
        " ",
        "(",
        "v2",
        ")",
        ".",
    ]


def test_a_changed_word_is_one_deletion_and_one_insertion() -> None:
    ops = word_diff("We study diffusion models.", "We study flow models.")
    assert ops == [
        (EQUAL, "We study "),
        (DELETED, "diffusion"),
        (INSERTED, "flow"),
        (EQUAL, " models."),
    ]


def test_punctuation_is_its_own_token() -> None:
    ops = word_diff("state of the art results.", "state of the art results;")
    assert ops == [(EQUAL, "state of the art results"), (DELETED, "."), (INSERTED, ";")]


def test_a_rewritten_phrase_is_one_change() -> None:
    ops = word_diff("a fast small model here", "a slow big network here")
    assert ops == [
        (EQUAL, "a "),
        (DELETED, "fast small model"),
        (INSERTED, "slow big network"),
        (EQUAL, " here"),
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("", "Accepted at ICLR 2026"),
        ("12 pages", ""),
        ("same text", "same text"),
        ("", ""),
        ("Schrödinger's cat, $x^2$", "Schrödinger’s cat, $x^3$ and more"),
        ("word " * 7000, "word " * 6999 + "other"),  # past the token cap: replaced whole
    ],
)
def test_the_runs_rebuild_both_texts(old: str, new: str) -> None:
    assert sides(word_diff(old, new)) == (old, new)


def test_a_comment_appearing_is_all_inserted() -> None:
    found = changes({"comments": None}, {"comments": "Accepted at ICLR 2026"})
    assert [(c.field, c.ops) for c in found] == [
        ("comments", ((INSERTED, "Accepted at ICLR 2026"),))
    ]


def test_only_changed_fields_are_listed_in_reading_order() -> None:
    old = {"title": "T", "authors": ["Ann Lee", "Bo Chen"], "abstract": "A.", "comments": "x"}
    new = {"title": "T", "authors": ["Ann Lee"], "abstract": "B.", "comments": "x"}
    found = changes(old, new)
    assert [c.label for c in found] == ["Authors", "Abstract"]
    assert found[0].ops == ((EQUAL, "Ann Lee"), (DELETED, ", Bo Chen"))
    assert found[1].to_json() == {
        "field": "abstract",
        "label": "Abstract",
        "diff": [["-", "A"], ["+", "B"], ["=", "."]],
    }
    assert changes(old, old) == []


def test_html_escapes_hostile_text_in_every_run() -> None:
    old = 'Safe <b onmouseover="x()">bold</b> & more'
    new = "Safe <script>alert('x')</script> & more"
    html = str(to_html(word_diff(old, new)))
    assert "<script>" not in html and "<b " not in html and 'onmouseover="' not in html
    assert "script&gt;alert(&#x27;" in html and "&amp; more" in html
    assert "<ins>" in html and "<del>" in html
    # Only the markers are markup: removing them leaves the escaped texts.
    plain = html.replace("<ins>", "").replace("</ins>", "")
    plain = plain.replace("<del>", "").replace("</del>", "")
    assert "<" not in plain


def test_html_marks_deletions_and_insertions() -> None:
    html = to_html([(EQUAL, "a "), (DELETED, "b"), (INSERTED, "c")])
    assert str(html) == "a <del>b</del><ins>c</ins>"
