"""Code, data and project links and venues found in abstracts, comments and journal-refs.
The examples are real comments and abstract sentences from the cs sample in shared data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.ingest.links import MAX_LINKS, find_links, find_paper_links, find_venue


def kinds(text: str) -> list[tuple[str, str, str]]:
    return [(x.kind, x.label, x.url) for x in find_links(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "The code is publicly available at https://github.com/an-yongqi/rest-kv",
            [("code", "GitHub", "https://github.com/an-yongqi/rest-kv")],
        ),
        (
            "Code and data: https://github.com/AMindToThink/icl-diversity",
            [("code", "GitHub", "https://github.com/AMindToThink/icl-diversity")],
        ),
        # Sentence punctuation and a closing bracket are not part of the URL.
        (
            "Our code is available on GitHub (https://github.com/ValentinLafargue/CulturalProbingLLM).",
            [("code", "GitHub", "https://github.com/ValentinLafargue/CulturalProbingLLM")],
        ),
        # No scheme, and authors' typos that still name a repository.
        (
            "The code is available at github.com/ryehr/RRC_steganography.",
            [("code", "GitHub", "https://github.com/ryehr/RRC_steganography")],
        ),
        (
            "publicly available at https: //github.com/Kainmueller-Lab/self_adapt.",
            [("code", "GitHub", "https://github.com/Kainmueller-Lab/self_adapt")],
        ),
        (
            "Code is available at: https://github.com/ KenAdamsJoseph/PersPose.",
            [("code", "GitHub", "https://github.com/KenAdamsJoseph/PersPose")],
        ),
        # A deep link names its repository; "\href{u}{u}" is one link.
        (
            r"codebase is available at: \href{https://github.com/arkel23/FGIR-KD-Teacher}"
            r"{https://github.com/arkel23/FGIR-KD-Teacher}.",
            [("code", "GitHub", "https://github.com/arkel23/FGIR-KD-Teacher")],
        ),
        (
            "see https://github.com/org/repo/tree/main/src and https://github.com/org/repo.git",
            [("code", "GitHub", "https://github.com/org/repo")],
        ),
        (
            "Our code will be released at https://anonymous.4open.science/r/Unishield-A6A3/",
            [("code", "Code", "https://anonymous.4open.science/r/Unishield-A6A3/")],
        ),
        (
            "Code: https://gitlab.com/group/project",
            [("code", "GitLab", "https://gitlab.com/group/project")],
        ),
        (
            "Benchmark: https://hf.co/datasets/cis-lmu/glotocr-bench.",
            [("dataset", "HF dataset", "https://hf.co/datasets/cis-lmu/glotocr-bench")],
        ),
        (
            "weights at https://huggingface.co/collections/nvidia/nemotron-twotower.",
            [
                (
                    "model",
                    "HF collection",
                    "https://huggingface.co/collections/nvidia/nemotron-twotower",
                )
            ],
        ),
        (
            "try it at https://huggingface.co/spaces/a/b or download https://huggingface.co/a/m",
            [
                ("demo", "HF Space", "https://huggingface.co/spaces/a/b"),
                ("model", "HF model", "https://huggingface.co/a/m"),
            ],
        ),
        (
            "Data are deposited at https://zenodo.org/records/123456.",
            [("data", "Zenodo", "https://zenodo.org/records/123456")],
        ),
        (
            "Project Page: https://cvlab-kaist.github.io/DiTracker/",
            [("project", "Project page", "https://cvlab-kaist.github.io/DiTracker/")],
        ),
        (
            "Project website: https://tri-ml.github.io/omnishape",
            [("project", "Project page", "https://tri-ml.github.io/omnishape")],
        ),
        # A project page on its own domain, said to be one.
        (
            "CVPR 2026. Project page: https://light.princeton.edu/publication/x",
            [("project", "Project page", "https://light.princeton.edu/publication/x")],
        ),
    ],
)
def test_links_in_real_abstracts_and_comments(
    text: str, expected: list[tuple[str, str, str]]
) -> None:
    assert kinds(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "detection results will be released in github",  # no address
        "Code and results will be available on github.com.",  # a host, not a repository
        "https://github.com/features/copilot is a product page",
        "Pre-print to the paper accepted at XAI World conference, 2024 "
        "(https://xaiworldconference.com/)",  # a conference site, not a project page
        "see https://doi.org/10.1000/xyz and https://arxiv.org/abs/2401.00001",
        "https://huggingface.co/papers/2401.00001",  # a paper page, not a model
        "https://",
        "",
    ],
)
def test_not_links(text: str) -> None:
    assert find_links(text) == ()


def test_links_come_once_each_and_at_most_max() -> None:
    text = " ".join(f"https://github.com/o/r{i}" for i in range(20))
    assert len(find_links(text, "https://github.com/o/r0")) == MAX_LINKS
    found = find_paper_links("Code: https://github.com/A/B.", "Code: https://github.com/A/B")
    assert [x.url for x in found.links] == ["https://github.com/A/B"]
    assert found.has_code and found.code == "https://github.com/A/B"


@pytest.mark.parametrize(
    ("comment", "label", "key"),
    [
        ("Accepted by NeurIPS 2025", "NeurIPS 2025", "nips2025"),
        ("Accepted to ICLR 2026", "ICLR 2026", "iclr2026"),
        ("ICLR 2026 (oral)", "ICLR 2026 Oral", "iclr2026"),
        ("NeurIPS 2025 Spotlight", "NeurIPS 2025 Spotlight", "nips2025"),
        ("CVPR 2026. Project page: https://yufu-wang.github.io/duomo/", "CVPR 2026", "cvpr2026"),
        ("Accepted by AAAI2026", "AAAI 2026", "aaai2026"),
        ("Accepted to CIKM'25", "CIKM 2025", "cikm2025"),
        ("Conference paper at COLM2025", "COLM 2025", "colm2025"),
        ("Findings of ACL 2026", "ACL 2026 Findings", "acl2026"),
        ("Accepted by ACL 2026 Findings", "ACL 2026 Findings", "acl2026"),
        (
            "9 pages, 8 figures (main); 22 pages, 11 figures (appendix). Accepted\n"
            "  to EMNLP 2025 (Main Conference)",
            "EMNLP 2025",
            "emnlp2025",
        ),
        (
            "2026 IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)",
            "CVPR 2026",
            "cvpr2026",
        ),
        ("International Conference on Machine Learning (ICML) 2026", "ICML 2026", "icml2026"),
        (
            "11 pages, 11 figures; Accepted by ACM MM2025; Mainly focus on",
            "ACM MM 2025",
            "acmmm2025",
        ),
        # Workshops are badges too, but no venue list of the main conference is theirs.
        ("Accepted at CVPRw 2026", "CVPR 2026 Workshop", None),
        ("Accepted at TrustNLP Workshop at ACL 2026", "ACL 2026 Workshop", None),
        ("Accepted at NSLP@LREC 2026", "LREC 2026 Workshop", None),
        ("Reliable Autonomy Workshop at ICLR 2026", "ICLR 2026 Workshop", None),
        # Venues this module does not know, after an acceptance word.
        (
            "Accepted to the 34th International Conference on Artificial Neural\n"
            "  Networks (ICANN 2025)",
            "ICANN 2025",
            "icann2025",
        ),
        ("Accepted at IEEE ICDL 2025. 6 pages, 7 figures, 2 tables", "ICDL 2025", "icdl2025"),
        # Journals may come without a year.
        ("Accepted for TMLR, https://openreview.net/forum?id=xN7NYpQeBm", "TMLR", None),
        ("This work is accepted by IEEE Transactions on Image Processing", "TIP", None),
    ],
)
def test_venues_in_real_comments(comment: str, label: str, key: str | None) -> None:
    venue = find_venue(comment)
    assert venue is not None
    assert (venue.label, venue.key) == (label, key)


@pytest.mark.parametrize(
    "comment",
    [
        "Submitted to COLM 2026",
        "30 pages, 8 figures, submitted to COLM 2026",
        "Pre-review version submitted to MICCAI 2026. 10 pages, 5 figures",
        "MICCAI 2026; Under review",
        "Accepted to ACL",  # no year
        "21 pages, 3 figures. See ACL 21 pages of appendix",  # "21" is no year here
        "acl 2026 is lower-case, so not the venue",
        "Accepted in 2025 by a journal",
        "12 pages",
    ],
)
def test_not_venues(comment: str) -> None:
    assert find_venue(comment) is None


def test_the_journal_ref_names_the_venue() -> None:
    assert find_venue(None, "Phys. Rev. Lett. 120, 123 (2018)").label == "Phys. Rev. Lett. 2018"  # type: ignore[union-attr]
    # A known venue in the journal-ref beats the comments' submission note.
    venue = find_venue("Submitted to ICML 2026", "Proceedings of NeurIPS 2025, pp. 1-10")
    assert venue is not None and venue.label == "NeurIPS 2025"
    assert find_venue(None, "12, 3 (2020)") is None


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=400),
    st.one_of(st.none(), st.text(max_size=200)),
    st.one_of(st.none(), st.text(max_size=100)),
)
def test_any_text_parses_without_error(
    abstract: str, comments: str | None, ref: str | None
) -> None:
    found = find_paper_links(abstract, comments, ref)
    assert len(found.links) <= MAX_LINKS
    assert all(x.url.startswith(("http://", "https://")) for x in found.links)
    if found.venue is not None:
        assert found.venue.label


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "https://",
                "github.com/",
                "a/b",
                "(",
                ")",
                "[",
                "]",
                "ICLR",
                " 2026",
                "'26",
                "@",
                "Workshop",
                "accepted at ",
                "\\href{",
                "}",
                "hf.co/datasets/",
                "https: //",
                ".github.io",
                "http://[::1",
                "\n",
                ";",
            ]
        ),
        max_size=40,
    ).map("".join)
)
def test_odd_mixtures_of_link_and_venue_syntax_parse(text: str) -> None:
    find_paper_links(text, text, text)


def test_share_of_the_real_sample_with_a_code_badge(shared_data: Path) -> None:
    """On the 49,866-paper cs sample, about one paper in six links its code."""
    path = shared_data / "arxiv" / "papers_cs_2025-08-05_2026-07-01.jsonl.gz"
    papers = code = venues = 0
    with gzip.open(path, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            found = find_paper_links(row["abstract"], row["comment"])
            papers += 1
            code += found.has_code
            venues += found.venue is not None
    assert papers == 49_866
    assert 0.15 < code / papers < 0.17
    assert 0.15 < venues / papers < 0.19
