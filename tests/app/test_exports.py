"""The export formats (`app.exports`), read back by the parsers reference managers use:
bibtexparser, rispy, the CSL-JSON schema, a CommonMark renderer. Hostile text (unpaired
braces, `ER  -` inside an abstract, an `@entry` in a title, HTML) must not break any of them."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import bibtexparser
import jsonschema
import pytest
import rispy
from bibtexparser.middlewares import SeparateCoAuthors
from markdown_it import MarkdownIt
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

from app.exports import (
    Name,
    Work,
    bibtex_text,
    citation_keys,
    download_name,
    split_name,
    to_bibtex,
    to_csl_json,
    to_markdown,
    to_ris,
)

CSL_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "csl" / "csl-data.json").read_text()
)

HOSTILE = Work(
    title="Evil } title {with @misc{x, 50% & #1 a_b <script>alert(1)</script>",
    authors=["Jean-Baptiste de la Fontaine", "The ATLAS Collaboration", "Plato", "A and B"],
    abstract="First line\nER  - \nTY  - JOUR\n@article{y, title={z}} \\footnote{open",
    arxiv_id="2603.00002",
    version=3,
    primary_category="cs.LG",
    categories=["cs.LG", "cs.CY"],
    comments="Accepted at ICLR 2026 }",
    journal_ref="J. Evil 1 (2026)",
    doi="10.1000/evil}",
    submitted=date(2026, 3, 2),
    url="https://arxiv.org/abs/2603.00002",
    tldr="A <b>bold</b> claim",
)
PLAIN = Work(
    title="Schrödinger bridges with $\\alpha^2$ noise",
    authors=["Erwin Schrödinger", "Ludwig van Beethoven III"],
    abstract="We study $x_1 + \\{y\\}$ at 95% confidence.",
    arxiv_id="hep-th/9901001",
    primary_category="hep-th",
    categories=["hep-th"],
    submitted=date(1999, 1, 4),
    url="https://arxiv.org/abs/hep-th/9901001",
)
VENUE_ONLY = Work(
    title="Unlinked venue paper",
    authors=["Bob"],
    abstract="Venue abstract.",
    venue="iclr2018",
    venue_status="Poster",
    url="https://openreview.net/forum?id=abc",
)
WORKS = [HOSTILE, PLAIN, VENUE_ONLY, HOSTILE]
# TeX's names for a lone brace, which the decoder does not know by default.
_TEX_CONTEXT = get_default_latex_context_db()
_TEX_CONTEXT.add_context_category(
    "braces",
    macros=[MacroTextSpec("textbraceleft", "{"), MacroTextSpec("textbraceright", "}")],
    prepend=True,
)
TEX = LatexNodes2Text(latex_context=_TEX_CONTEXT)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("Jean-Baptiste de la Fontaine", Name("Jean-Baptiste", "de la Fontaine")),
        ("Ludwig van Beethoven III", Name("Ludwig", "van Beethoven", "III")),
        ("John Smith, Jr.", Name("John", "Smith", "Jr.")),
        ("Smith, John", Name("John", "Smith")),
        ("Zac E. Imel", Name("Zac E.", "Imel")),
        ("Plato", Name(literal="Plato")),
        ("王小明", Name(literal="王小明")),
        ("The ATLAS Collaboration", Name(literal="The ATLAS Collaboration")),
    ],
)
def test_names_split_as_a_reference_manager_expects(raw: str, name: Name) -> None:
    assert split_name(raw) == name


def test_keys_are_unique_within_a_file() -> None:
    keys = citation_keys(WORKS)
    assert len(set(keys)) == len(keys)
    assert keys[0] == "fontaine2026evil" and keys[3] == "fontaine2026evila"
    assert keys[1] == "schrodinger1999schrodinger"  # accents folded to ASCII


def test_bibtex_escapes_what_tex_would_misread() -> None:
    assert bibtex_text("95% & #1 a_b") == r"95\% \& \#1 a\_b"
    assert bibtex_text(r"$x_1 % y$ and \% kept") == r"$x_1 \% y$ and \% kept"
    assert bibtex_text("{ok} } {") == r"{ok} \textbraceright{} \textbraceleft{}"
    assert bibtex_text("line\nbreak  here") == "line break here"
    assert bibtex_text("ends in \\") == r"ends in \textbackslash{}"


def test_bibtex_parses_with_every_entry_and_field_intact() -> None:
    library = bibtexparser.parse_string(to_bibtex(WORKS), append_middleware=[SeparateCoAuthors()])
    assert not library.failed_blocks
    entries = library.entries
    assert [e.key for e in entries] == citation_keys(WORKS)
    evil = entries[0]
    assert evil.entry_type == "misc"
    assert evil["eprint"] == "2603.00002"
    assert evil["archivePrefix"] == "arXiv"
    assert evil["primaryClass"] == "cs.LG"
    assert evil["year"] == "2026"
    assert evil["month"] == "mar"
    assert evil["doi"] == r"10.1000/evil\textbraceright{}"
    assert evil["url"] == "https://arxiv.org/abs/2603.00002"
    # The title survives whole (the `@misc{` inside it starts no entry) and reads back as
    # the original text once TeX is decoded.
    text = TEX.latex_to_text(evil["title"])
    assert text == HOSTILE.title
    assert evil["author"] == [
        "Jean-Baptiste de la Fontaine",
        "{The ATLAS Collaboration}",
        "Plato",
        "{A and B}",
    ]
    assert "ER - TY - JOUR" in evil["abstract"]
    plain = entries[1]
    assert plain["title"] == r"Schrödinger bridges with $\alpha^2$ noise"
    assert plain["abstract"] == r"We study $x_1 + \{y\}$ at 95\% confidence."
    assert plain["doi"] == "10.48550/arXiv.hep-th/9901001"
    venue = entries[2]
    assert venue.entry_type == "inproceedings"
    assert venue["booktitle"] == "iclr2018"
    assert venue["year"] == "2018"
    assert "eprint" not in venue


def test_ris_parses_one_record_per_work() -> None:
    text = to_ris(WORKS)
    records = rispy.loads(text)
    assert len(records) == len(WORKS)
    evil = records[0]
    assert evil["type_of_reference"] == "UNPB"
    assert evil["title"] == " ".join(HOSTILE.title.split())
    assert evil["authors"] == [
        "de la Fontaine, Jean-Baptiste",
        "The ATLAS Collaboration",
        "Plato",
        "A and B",
    ]
    # `ER  -` inside the abstract stays inside it: no record ends early.
    assert evil["abstract"].startswith("First line ER - TY - JOUR @article{y")
    assert evil["accession_number"] == "arXiv:2603.00002"
    assert evil["publisher"] == "arXiv"
    assert evil["keywords"] == ["cs.LG", "cs.CY"]
    assert evil["date"] == "2026/03/02/"
    assert evil["urls"] == ["https://arxiv.org/abs/2603.00002"]
    assert records[1]["doi"] == "10.48550/arXiv.hep-th/9901001"
    assert records[2]["type_of_reference"] == "CPAPER"
    assert records[2]["secondary_title"] == "iclr2018"


def test_csl_json_matches_the_official_schema() -> None:
    items = json.loads(to_csl_json(WORKS))
    jsonschema.validate(items, CSL_SCHEMA)
    evil, plain, venue = items[0], items[1], items[2]
    assert evil["type"] == "article"
    assert evil["publisher"] == "arXiv" and evil["number"] == "arXiv:2603.00002"
    assert evil["title"] == " ".join(HOSTILE.title.split())
    assert evil["author"][:3] == [
        {"family": "de la Fontaine", "given": "Jean-Baptiste"},
        {"literal": "The ATLAS Collaboration"},
        {"literal": "Plato"},
    ]
    assert evil["issued"] == {"date-parts": [[2026, 3, 2]]}
    assert evil["DOI"] == "10.1000/evil}"
    assert evil["version"] == "3"
    assert "Comments: Accepted at ICLR 2026 }" in evil["note"]
    assert plain["author"][1] == {"family": "van Beethoven", "given": "Ludwig", "suffix": "III"}
    assert venue["type"] == "paper-conference" and venue["container-title"] == "iclr2018"
    assert len({i["id"] for i in items}) == len(items)


def test_markdown_renders_as_text_never_html() -> None:
    text = to_markdown(WORKS, "Day <b>list</b>")
    html = MarkdownIt("commonmark").render(text)
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<li>") == len(WORKS)
    assert '<a href="https://arxiv.org/abs/2603.00002">' in html
    assert "TL;DR: A &lt;b&gt;bold&lt;/b&gt; claim" in html
    assert "<h1>Day &lt;b&gt;list&lt;/b&gt;</h1>" in html


def test_download_names_are_safe() -> None:
    assert download_name("cs.AI+cs.LG-2026-03-03", "bibtex") == (
        "papershelf-cs.AI+cs.LG-2026-03-03.bib"
    )
    assert download_name('"; rm -rf /\r\n', "csl-json") == "papershelf-rm--rf.csl.json"
    assert download_name("", "markdown") == "papershelf-papers.md"
