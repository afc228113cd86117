"""arXiv identifiers: parse anything a user or a feed writes into (id, version).

Accepted: old style `archive/YYMMNNN` (also with a subject class, `math.GT/0309136`, which
arXiv files as `math/0309136`), new style `YYMM.NNNN` (0704–1412) and `YYMM.NNNNN` (1501 on),
an optional `vN`, an `arXiv:` prefix in any case, abs/pdf/html URLs on arxiv.org or
export.arxiv.org (`.pdf` suffix, query string and fragment ignored), `oai:arXiv.org:` OAI
identifiers, and surrounding whitespace.

Error policy: anything else raises `InvalidArxivId` (a `ValueError`) whose message quotes the
input and says what is wrong; nothing else is ever raised. Callers turn it into a RecordError.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from app.taxonomy import get_taxonomy

# The hot path: a bare new-style id, as every JSON source writes it.
_NEW = re.compile(r"(\d{2})(\d{2})\.(\d{4,5})(?:v(\d{1,6}))?", re.ASCII)
_OLD = re.compile(
    r"([a-zA-Z]+(?:-[a-zA-Z]+)*)(?:\.[A-Za-z]{2})?/(\d{2})(\d{2})(\d{3})(?:v(\d{1,6}))?", re.ASCII
)
_PREFIX = re.compile(
    r"""^(?:
        (?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html|format|ps)/
      | oai:arxiv\.org:
      | arxiv:
    )""",
    re.IGNORECASE | re.VERBOSE | re.ASCII,
)
_URL_TAIL = re.compile(r"(?:\.pdf)?/?(?:[?#].*)?$", re.IGNORECASE | re.DOTALL)
_SEPARATORS = re.compile(r"[,\s]+")

_MAX_SHOWN = 80  # keep error messages readable when someone pastes a page of text
# `not_yet_issued` errs towards "may exist": a month's ids are taken as issued a few days
# early (time zones, and submissions after a month's last deadline), and at a pace far
# above arXiv's (about a thousand a day in 2025; never near this).
_EARLY_DAYS = 4
_MAX_PER_DAY = 10_000


class InvalidArxivId(ValueError):
    """The text is not an arXiv identifier."""

    def __init__(self, text: str, reason: str) -> None:
        shown = text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"
        self.text = text
        self.reason = reason
        super().__init__(f"not an arXiv id: {shown!r} ({reason})")


def _version(raw: str | None, text: str) -> int | None:
    if raw is None:
        return None
    number = int(raw)
    if number < 1:
        raise InvalidArxivId(text, "versions start at v1")
    return number


def _new_style(m: re.Match[str], text: str) -> tuple[str, int | None]:
    yy, mm, seq, ver = m.group(1), m.group(2), m.group(3), m.group(4)
    month = int(mm)
    if not 1 <= month <= 12:
        raise InvalidArxivId(text, f"month {mm} does not exist")
    yymm = int(yy + mm)
    if len(seq) == 4 and not 704 <= yymm <= 1412:
        raise InvalidArxivId(text, "4-digit numbers were used from 0704 to 1412 only")
    if len(seq) == 5 and yymm < 1501:
        raise InvalidArxivId(text, "5-digit numbers start in 1501")
    if int(seq) == 0:
        raise InvalidArxivId(text, "sequence numbers start at 1")
    if ver is None:
        return m.group(0), None
    return m.group(0).partition("v")[0], _version(ver, text)


def _old_style(m: re.Match[str], text: str) -> tuple[str, int | None]:
    archive, yy, mm, seq, ver = (m.group(i) for i in range(1, 6))
    archive = archive.lower()
    if archive not in get_taxonomy().archives:
        raise InvalidArxivId(text, f"unknown archive {archive!r}")
    month = int(mm)
    if not 1 <= month <= 12:
        raise InvalidArxivId(text, f"month {mm} does not exist")
    # Old-style ids ran from 9107 (hep-th's start) to 0703.
    year = int(yy)
    if not (year >= 91 or year <= 7) or (year == 91 and month < 7) or (year == 7 and month > 3):
        raise InvalidArxivId(text, "old-style ids exist for 9107–0703 only")
    if int(seq) == 0:
        raise InvalidArxivId(text, "sequence numbers start at 1")
    return f"{archive}/{yy}{mm}{seq}", _version(ver, text)


def parse_arxiv_id(text: str) -> tuple[str, int | None]:
    """Normalise `text` to (id without version, version or None).

    >>> parse_arxiv_id("arXiv:1706.03762v5")
    ('1706.03762', 5)
    >>> parse_arxiv_id("https://arxiv.org/abs/math.GT/0309136")
    ('math/0309136', None)
    """
    if not isinstance(text, str):
        raise InvalidArxivId(repr(text), "not a string")
    m = _NEW.fullmatch(text)
    if m is not None:
        return _new_style(m, text)
    s = text.strip()
    prefix = _PREFIX.match(s)
    if prefix is not None:
        s = s[prefix.end() :]
        s = _URL_TAIL.sub("", s, count=1)
    if not s:
        raise InvalidArxivId(text, "empty")
    m = _NEW.fullmatch(s)
    if m is not None:
        return _new_style(m, text)
    m = _OLD.fullmatch(s)
    if m is not None:
        return _old_style(m, text)
    raise InvalidArxivId(text, "expected YYMM.NNNNN, YYMM.NNNN or archive/YYMMNNN")


def split_id_list(text: str) -> list[tuple[str, int | None]]:
    """Parse a comma- (or space-) separated list, as in the site's `/arxiv/{id},{id}`.

    Order is kept, repeats of the same id and version are dropped, empty items are ignored.
    The first invalid item raises `InvalidArxivId` naming that item.
    """
    out: list[tuple[str, int | None]] = []
    seen: set[tuple[str, int | None]] = set()
    for item in _SEPARATORS.split(text):
        if not item:
            continue
        parsed = parse_arxiv_id(item)
        if parsed not in seen:
            seen.add(parsed)
            out.append(parsed)
    return out


def not_yet_issued(arxiv_id: str, now: datetime) -> str | None:
    """Why arXiv cannot have issued `arxiv_id` (normalised, as `parse_arxiv_id` returns it)
    by `now`, or None when it may exist. Pure: `now` is the caller's clock.

    Certain only, never a guess: a new-style id is impossible when its month is after the
    current one, or when its sequence number is beyond what even ten thousand ids a day
    since the month began would reach. Old-style and past months' ids may all exist.

    >>> from datetime import UTC
    >>> not_yet_issued("2712.00001", datetime(2026, 12, 6, tzinfo=UTC))
    '2712.00001: arXiv has not issued ids for 2027-12 yet'
    >>> not_yet_issued("2612.00001", datetime(2026, 12, 6, tzinfo=UTC)) is None
    True
    """
    m = _NEW.fullmatch(arxiv_id)
    if m is None:
        return None
    month = date(2000 + int(m.group(1)), int(m.group(2)), 1)
    horizon = (now + timedelta(days=_EARLY_DAYS)).date()
    current = horizon.replace(day=1)
    if month > current:
        return f"{arxiv_id}: arXiv has not issued ids for {month:%Y-%m} yet"
    if month == current and int(m.group(3)) > _MAX_PER_DAY * horizon.day:
        return f"{arxiv_id}: arXiv has not issued that many ids in {month:%Y-%m} yet"
    return None
