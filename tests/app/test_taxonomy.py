from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.taxonomy import canonical, get_taxonomy, looks_like_category

APP_DATA = Path(__file__).resolve().parents[2] / "app" / "data" / "taxonomy.json"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("cs.CL", "cs.CL"),
        ("cs.NA", "math.NA"),
        ("cs.SY", "eess.SY"),
        ("math.IT", "cs.IT"),
        ("math.MP", "math-ph"),
        ("stat.TH", "math.ST"),
        ("q-fin.EC", "econ.GN"),
        ("cmp-lg", "cs.CL"),  # retired archive
        ("chao-dyn", "nlin.CD"),
        ("astro-ph", "astro-ph"),  # legacy primary, still a category
        ("hep-th", "hep-th"),
        ("CS.cl", "cs.CL"),  # typed in the wrong case
        (" cs.AI ", "cs.AI"),
    ],
)
def test_canonical(raw: str, expected: str) -> None:
    assert canonical(raw) == expected
    assert get_taxonomy().is_known(raw)


@pytest.mark.parametrize("raw", ["cs", "math", "cs.XX", "I.2.7", "68T05", "", "test.dis-nn"])
def test_unknown_is_none(raw: str) -> None:
    assert canonical(raw) is None


def test_names_and_archives() -> None:
    tax = get_taxonomy()
    assert tax.name("cs.CV") == "Computer Vision and Pattern Recognition"
    assert tax.name("cs.NA") == "Numerical Analysis"
    assert tax.name("nope") is None
    cs = [c.id for c in tax.categories_in_archive("cs")]
    assert cs[0] == "cs.AI" and "cs.LG" in cs and len(cs) == 40
    assert all(c.startswith("cs.") for c in cs)


def test_expand_archive_and_category() -> None:
    tax = get_taxonomy()
    cs = tax.expand("cs")
    assert "cs.AI" in cs and "math.NA" in cs and "eess.SY" in cs  # aliases resolved
    assert "cs.NA" not in cs and len(cs) == len(set(cs))
    assert tax.expand("astro-ph")[0] == "astro-ph"  # legacy primary kept
    assert "astro-ph.CO" in tax.expand("astro-ph")
    assert tax.expand("hep-th") == ["hep-th"]
    assert tax.expand("cs.NA") == ["math.NA"]
    assert tax.expand("nonsense") == []


def test_tree_is_a_clean_picker() -> None:
    tree = get_taxonomy().tree()
    groups = [g.group.name for g in tree]
    assert groups[:4] == ["Physics", "Mathematics", "Quantitative Biology", "Computer Science"]
    shown = [c.id for g in tree for a in g.archives for c in a.categories]
    assert len(shown) == len(set(shown))  # every category exactly once
    assert "cs.NA" not in shown and "math.NA" in shown
    assert all(get_taxonomy().categories[c].active for c in shown)
    cs = next(a for g in tree for a in g.archives if a.archive.id == "cs")
    assert {c.id for c in cs.categories} >= {"cs.AI", "cs.CL", "cs.CV", "cs.LG"}


@pytest.mark.parametrize("s", ["cs.AI", "hep-th", "cond-mat.mes-hall", "astro-ph.CO", "math-ph"])
def test_looks_like_category(s: str) -> None:
    assert looks_like_category(s)


@pytest.mark.parametrize("s", ["I.2.7", "68T05", "cs.AI cs.LG", "", "cs/0112017", "CS AI"])
def test_does_not_look_like_category(s: str) -> None:
    assert not looks_like_category(s)


def test_partition_splits_compound_terms() -> None:
    cats, classes = get_taxonomy().partition(
        ["cs.CV", "cs.CV, cs.MM", "I.2.7; H.3.3", "68T05, 68T50", "N/A", "Machine learning, x"]
    )
    assert cats == ["cs.CV", "cs.MM"]
    assert classes == ["I.2.7", "H.3.3", "68T05", "68T50", "Machine learning, x"]


def test_resolve_takes_first_category_shaped_term_as_primary() -> None:
    tax = get_taxonomy()
    assert tax.resolve(["cs.NA", "math.NA", "cs.LG"]) == ("math.NA", ["math.NA", "cs.LG"], [])
    assert tax.resolve(["cs.XX", "cs.AI"])[0] is None  # unknown primary is not skipped
    assert tax.resolve(["I.2.7"])[0] is None
    assert tax.resolve(["cs.LG", "cs.AI"], "cs.AI")[1] == ["cs.AI", "cs.LG"]
    first = tax.resolve(["cs.AI"])
    first[1].append("mutated")
    assert tax.resolve(["cs.AI"])[1] == ["cs.AI"]  # cached results are not shared


def test_oai_dc_subject_names() -> None:
    tax = get_taxonomy()
    assert tax.from_subject_name("Computer Science - Artificial Intelligence") == "cs.AI"
    assert tax.from_subject_name("Mathematics - Numerical Analysis") == "math.NA"
    assert tax.from_subject_name("Computer Science - Numerical Analysis") == "math.NA"
    assert tax.from_subject_name("High Energy Physics - Theory") == "hep-th"
    assert tax.from_subject_name("Quantum Physics") == "quant-ph"
    assert tax.from_subject_name("Statistics - Machine Learning") == "stat.ML"
    assert tax.from_subject_name("Basket Weaving") is None


def test_packaged_data_names_its_source_and_licence() -> None:
    data = json.loads(APP_DATA.read_text(encoding="utf-8"))
    assert "arxiv-base" in data["source"]
    assert "MIT" in data["license"]


def test_packaged_data_matches_shared_taxonomy(shared_data: Path) -> None:
    upstream = json.loads((shared_data / "arxiv" / "taxonomy.json").read_text(encoding="utf-8"))
    ours = json.loads(APP_DATA.read_text(encoding="utf-8"))
    assert ours["category_aliases"] == upstream["category_aliases"]
    assert ours["archives_subsumed"] == upstream["archives_subsumed"]
    mine = {c["id"]: c for c in ours["categories"]}
    expected = {
        cid: c
        for cid, c in upstream["categories"].items()
        if upstream["archives"][c["in_archive"]]["in_group"] not in ("grp_test", "grp_bad")
    }
    assert mine.keys() == expected.keys()
    for cid, c in expected.items():
        assert mine[cid]["name"] == c["full_name"]
        assert mine[cid]["active"] == c["is_active"]
        assert mine[cid]["archive"] == c["in_archive"]
        if "description" in mine[cid]:
            assert mine[cid]["description"] == " ".join(c["description"].split())
    archives = {a["id"]: a for a in ours["archives"]}
    for aid, a in archives.items():
        assert upstream["archives"][aid]["full_name"] == a["name"]
        assert upstream["archives"][aid]["in_group"] == a["group"]
