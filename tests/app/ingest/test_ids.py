from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ingest.ids import InvalidArxivId, not_yet_issued, parse_arxiv_id, split_id_list


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1706.03762", ("1706.03762", None)),
        ("1706.03762v5", ("1706.03762", 5)),
        ("arXiv:1706.03762v5", ("1706.03762", 5)),
        ("ARXIV:1706.03762", ("1706.03762", None)),
        ("arxiv:2401.00123", ("2401.00123", None)),
        ("  0704.0001 \n", ("0704.0001", None)),
        ("1412.6529v2", ("1412.6529", 2)),  # the last 4-digit month
        ("1501.00001", ("1501.00001", None)),  # the first 5-digit month
        ("hep-th/9901001", ("hep-th/9901001", None)),
        ("hep-th/9901001v2", ("hep-th/9901001", 2)),
        ("cond-mat/0412498v1", ("cond-mat/0412498", 1)),
        ("math.GT/0309136", ("math/0309136", None)),  # subject-class form
        ("cs.AI/0112017", ("cs/0112017", None)),
        ("cmp-lg/9404001", ("cmp-lg/9404001", None)),
        ("https://arxiv.org/abs/1706.03762", ("1706.03762", None)),
        ("http://arxiv.org/abs/1707.08567v1", ("1707.08567", 1)),  # API entry id
        ("https://arxiv.org/pdf/2101.00001v2.pdf", ("2101.00001", 2)),
        ("https://arxiv.org/pdf/2101.00001v2", ("2101.00001", 2)),
        ("https://www.arxiv.org/abs/hep-th/9901001v3", ("hep-th/9901001", 3)),
        ("http://export.arxiv.org/abs/1412.6529v2?context=cs", ("1412.6529", 2)),
        ("export.arxiv.org/abs/cond-mat/0603029", ("cond-mat/0603029", None)),
        ("https://arxiv.org/abs/math.GT/0309136v1/", ("math/0309136", 1)),
        ("oai:arXiv.org:1401.2122", ("1401.2122", None)),
        ("oai:arXiv.org:2203.01250v3", ("2203.01250", 3)),  # RSS guid
        ("oai:arXiv.org:cs/0112017v2", ("cs/0112017", 2)),
    ],
)
def test_valid_ids(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_arxiv_id(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("abc", "expected"),
        ("", "empty"),
        ("   ", "empty"),
        ("0000.0000", "month 00"),
        ("1413.0001", "month 13"),
        ("0703.0001", "0704 to 1412"),  # 4-digit ids started in April 2007
        ("1501.0001", "0704 to 1412"),  # 4-digit after 1412
        ("1412.00001", "start in 1501"),  # 5-digit before 1501
        ("1706.03762v0", "v1"),
        ("1706.00000", "start at 1"),
        ("1706.037621", "expected"),
        ("foo-bar/9901001", "unknown archive"),
        ("hep-th/0801001", "9107–0703"),  # old style after March 2007
        ("hep-th/9101001", "9107–0703"),
        ("hep-th/99010011", "expected"),
        ("https://example.org/abs/1706.03762", "expected"),
        ("arXiv:", "empty"),
        ("1706.03762v", "expected"),
        ("１７０６.０３７６２", "expected"),  # full-width digits are not an id
    ],
)
def test_invalid_ids(text: str, why: str) -> None:
    with pytest.raises(InvalidArxivId, match=why) as info:
        parse_arxiv_id(text)
    assert isinstance(info.value, ValueError)
    assert "not an arXiv id" in str(info.value)


def test_error_message_quotes_input_and_stays_short() -> None:
    with pytest.raises(InvalidArxivId) as info:
        parse_arxiv_id("x" * 500)
    assert len(str(info.value)) < 200


def test_split_id_list() -> None:
    assert split_id_list("1706.03762,hep-th/9901001v2, arXiv:2401.00123 ,,1706.03762") == [
        ("1706.03762", None),
        ("hep-th/9901001", 2),
        ("2401.00123", None),
    ]
    assert split_id_list("") == []
    with pytest.raises(InvalidArxivId, match="'bogus'"):
        split_id_list("1706.03762,bogus")


@given(st.text(max_size=60))
def test_never_raises_anything_else(text: str) -> None:
    try:
        arxiv_id, version = parse_arxiv_id(text)
    except InvalidArxivId:
        return
    assert parse_arxiv_id(arxiv_id) == (arxiv_id, None)
    assert version is None or version >= 1


id_chars = st.sampled_from("0123456789.v/:-abcdehmprstxAGTXv ")


@given(st.text(alphabet=id_chars, max_size=30))
def test_never_raises_on_id_like_noise(text: str) -> None:
    with contextlib.suppress(InvalidArxivId):
        parse_arxiv_id(text)


@given(
    yymm=st.integers(1501, 9912).filter(lambda n: 1 <= n % 100 <= 12),
    seq=st.integers(1, 99999),
    version=st.none() | st.integers(1, 99),
    prefix=st.sampled_from(["", "arXiv:", "https://arxiv.org/abs/", "oai:arXiv.org:"]),
)
def test_new_style_round_trip(yymm: int, seq: int, version: int | None, prefix: str) -> None:
    bare = f"{yymm:04d}.{seq:05d}"
    text = prefix + bare + (f"v{version}" if version else "")
    assert parse_arxiv_id(text) == (bare, version)


DEC_6 = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("arxiv_id", "now", "impossible"),
    [
        ("2712.00001", DEC_6, True),  # a year ahead
        ("2701.00001", DEC_6, True),  # next month
        ("2612.00001", DEC_6, False),
        ("2612.69999", DEC_6, False),  # ten thousand a day, with days of slack, may exist
        # More than arXiv can have issued by the 1st (ten thousand a day, days of slack).
        ("2612.60000", datetime(2026, 12, 1, tzinfo=UTC), True),
        ("2612.40000", datetime(2026, 12, 1, tzinfo=UTC), False),
        ("2611.99999", DEC_6, False),  # a past month: any number may exist
        ("1412.9999", DEC_6, False),
        ("hep-th/9901001", DEC_6, False),
        # Late in a month the next month's first ids may already be out.
        ("2701.00001", datetime(2026, 12, 29, tzinfo=UTC), False),
        ("2701.00001", datetime(2026, 12, 20, tzinfo=UTC), True),
    ],
)
def test_not_yet_issued(arxiv_id: str, now: datetime, impossible: bool) -> None:
    reason = not_yet_issued(arxiv_id, now)
    assert (reason is not None) == impossible
    if reason:
        assert arxiv_id in reason


@given(st.integers(1, 99), st.integers(1, 12), st.integers(1, 99999))
def test_ids_up_to_the_current_month_start_may_exist(yy: int, mm: int, seq: int) -> None:
    """Whatever id parses, it may exist once its month has come and gone."""
    arxiv_id = f"{yy:02d}{mm:02d}.{seq:05d}"
    month_after = datetime(2000 + yy + mm // 12, mm % 12 + 1, 1, tzinfo=UTC)
    assert not_yet_issued(arxiv_id, month_after) is None
