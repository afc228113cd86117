"""Text normalisation shared by every parser: whitespace, TeX accents, author lists, title keys.

arXiv metadata is plain text with TeX habits: hard-wrapped lines, accents written as
`Schr\\"odinger` or `Schr{\\"o}dinger`, and inline math `$\\hat{x}$`. We decode text-mode accent
macros to Unicode (outside `$…$`, `$$…$$`, `\\(…\\)` and `\\[…\\]`, which stay exactly as written)
and collapse whitespace. Everything here is pure and total: no input raises.

`strip_xml_illegal` is the rule for characters no stored text may hold (NUL, which PostgreSQL
refuses, and the rest of what XML 1.0 forbids, which would break every feed showing it); the
record types apply it to every field they are built with, so no source can bypass it.

These run on every title and abstract of a 2.5M-paper back-fill, so each function has a fast
path for the common case (no backslash means there is nothing to decode).
"""

from __future__ import annotations

import email.utils
import re
import unicodedata
from datetime import UTC, datetime, timedelta

# Combining marks for TeX's text accents.
_COMBINING = {
    '"': "\u0308",  # diaeresis
    "'": "\u0301",  # acute
    "`": "\u0300",  # grave
    "^": "\u0302",  # circumflex
    "~": "\u0303",  # tilde
    "=": "\u0304",  # macron
    ".": "\u0307",  # dot above
    "c": "\u0327",  # cedilla
    "v": "\u030c",  # caron
    "H": "\u030b",  # double acute
    "u": "\u0306",  # breve
    "k": "\u0328",  # ogonek
    "r": "\u030a",  # ring
    "d": "\u0323",  # dot below
    "b": "\u0331",  # macron below
}
_LETTERS = {
    "aa": "å",
    "AA": "Å",
    "ae": "æ",
    "AE": "Æ",
    "oe": "œ",
    "OE": "Œ",
    "o": "ø",
    "O": "Ø",
    "ss": "ß",
    "l": "ł",
    "L": "Ł",
    "i": "ı",
    "j": "ȷ",
}

_BASE = r"(?:\\[ij](?![A-Za-z])|[A-Za-z])"
# One pass, starting with a literal backslash so the regex engine can skip ahead quickly.
# Groups: 1 symbol accent with base 2 (braced) or 3; 4 letter accent (\c{c}, \c c) with base
# 5 or 6; 7 special letter (\ss, \o{}; a control word eats one space); 8 escaped character.
_TEX = re.compile(
    rf"""\\(?:
        (["'`^~=.])\s*(?:\{{\s*({_BASE})\s*\}}|({_BASE}))
      | ([cvHukrdb])(?:\s*\{{\s*({_BASE})\s*\}}|\s+({_BASE}))
      | (aa|AA|ae|AE|oe|OE|ss|o|O|l|L|i|j)(?![A-Za-z])(?:\{{\}}|[ \t])?
      | ([&%\#_])
    )""",
    re.VERBOSE,
)
# What remains of {\"o} or {\o} after decoding: braces around one decoded letter.
_BRACED = re.compile(r"\{([^\x00-\x7f{}])\}")
# Math spans, left untouched; an unpaired $ is just text. Escaped dollars are masked with
# _DOLLAR first (no lookbehinds, so the engine can jump between candidate characters).
_MATH = re.compile(r"(\$\$.+?\$\$|\$.+?\$|\\\(.+?\\\)|\\\[.+?\\\])", re.DOTALL)
_DOLLAR = "\x00"
_NON_WORD = re.compile(r"[\W_]+")
_APOSTROPHES = re.compile(r"['\u2019\u02bc]")
# Author lists: "A, B and C", "A, B, and C", "A & B".
_AUTHOR_SEP = re.compile(r"\s*(?:,\s*and\s+|,|;|\s+and\s+|\s+&\s+)\s*")
# UTF-8 read as Latin-1: a lead byte (Â–ô) followed by a continuation byte (U+0080–U+00BF).
_MOJIBAKE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf]")
_PARENS = re.compile(r"\([^()]*\)")
_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "v"})
# What XML 1.0 does not allow in a document: C0 controls other than tab, newline and carriage
# return (NUL among them), U+FFFE, U+FFFF, and surrogates (a Python string only holds
# unpaired ones: a JSON surrogate pair decodes to one code point).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_C0_BYTES = bytes((*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)))  # the ASCII ones


def strip_xml_illegal(s: str) -> str:
    """Remove the characters XML 1.0 forbids (see `_XML_ILLEGAL`); keep everything else.

    >>> strip_xml_illegal("a\\x00b\\x02c\\td")
    'abc\\td'
    """
    if len(s) > 64 and s.isascii():
        # Long ASCII text (most abstracts): a byte-table pass, several times faster than
        # isprintable()'s per-character Unicode lookups.
        kept = s.encode().translate(None, _C0_BYTES)
        return s if len(kept) == len(s) else kept.decode()
    # isprintable() is True for almost every title and author (a fast C scan) and False for
    # every character removed here.
    if s.isprintable():
        return s
    return _XML_ILLEGAL.sub("", s)


def _tex(m: re.Match[str]) -> str:
    mark = m.group(1) or m.group(4)
    if mark:
        base = m.group(2) or m.group(3) or m.group(5) or m.group(6)
        if base in ("\\i", "\\j"):  # accents go on the dotted letter: \'\i is í
            base = base[1]
        return unicodedata.normalize("NFC", base + _COMBINING[mark])
    letter = m.group(7)
    return _LETTERS[letter] if letter else m.group(8)


def _decode_plain(text: str) -> str:
    if "\\" not in text:
        return text
    text = _TEX.sub(_tex, text)
    return _BRACED.sub(r"\1", text) if "{" in text else text


def decode_tex_accents(s: str) -> str:
    """Turn text-mode TeX accents and special letters into Unicode; leave math alone.

    >>> decode_tex_accents('Schr\\\\"odinger on $\\\\hat{x}$')
    'Schrödinger on $\\\\hat{x}$'
    """
    if "\\" not in s:
        return s
    if "$" not in s and "\\(" not in s and "\\[" not in s:
        return _decode_plain(s)
    masked = "\\$" in s and _DOLLAR not in s
    if masked:
        s = s.replace("\\$", _DOLLAR)
    parts = _MATH.split(s)
    # re.split with one group alternates text, math, text, …
    for i in range(0, len(parts), 2):
        parts[i] = _decode_plain(parts[i])
    out = "".join(parts)
    return out.replace(_DOLLAR, "\\$") if masked else out


def clean_text(s: str) -> str:
    """Decode TeX accents, collapse every whitespace run (hard line breaks too) to one space,
    strip. Equal to `" ".join(decode_tex_accents(s).split())`, but ASCII text wrapped with
    single newlines (most abstracts) takes a path several times faster than split/join."""
    if "\\" in s:
        s = decode_tex_accents(s)
    if s.isascii():
        if "\n" in s:
            s = s.replace("\n", " ")
        # isprintable() is False for any other ASCII whitespace (and control characters).
        if "  " not in s and s.isprintable():
            return s.strip()
    # Before collapsing, so "a \x00 b" becomes "a b", not "a  b".
    return " ".join(strip_xml_illegal(s).split())


def repair_mojibake(s: str) -> str:
    """Undo UTF-8 that was decoded as Latin-1 ("RamÃ­rez" → "Ramírez").

    Clients that ignore the API's charset store such text (the recorded fixtures have it).
    Only a string that round-trips exactly is changed, so genuine Latin-1 text is kept."""
    if s.isascii() or _MOJIBAKE.search(s) is None:
        return s
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def clean_optional(s: object) -> str | None:
    """`clean_text` for optional fields: non-strings and blank strings become None."""
    if not isinstance(s, str):
        return None
    return clean_text(s) or None


#: TeX commands that only style their argument ("\textsc{SimInstruct}", "$\mathbf{x}$"): a
#: title key keeps the argument, not the command's name. Other commands (\LaTeX, \alpha)
#: are words of the title and stay.
_STYLE_COMMAND = re.compile(
    r"\\(?:emph|text(?:bf|it|tt|sc|rm|sf|up|md|normal|sl)?|math(?:rm|bf|it|cal|bb|sf|tt|frak|scr)"
    r"|bm|boldsymbol|operatorname|mbox|hbox|underline)(?![A-Za-z])\*?"
)


def title_key(title: str) -> str:
    """A matching key: equal keys mean the same title up to case, accents (TeX or Unicode),
    punctuation, TeX braces, styling commands and spacing. "Schr{\\"o}dinger's Cat!" and
    "schrodingers  cat" both give "schrodingers cat", "\\textsc{SimInstruct}: a tool" and
    "SimInstruct: A Tool" give "siminstruct a tool". Apostrophes vanish rather than split a
    word."""
    s = decode_tex_accents(title) if "\\" in title else title
    if "\\" in s:
        s = _STYLE_COMMAND.sub(" ", s)
    s = _APOSTROPHES.sub("", s)
    if s.isascii():  # most titles: nothing to fold, skip the per-character pass
        return " ".join(_NON_WORD.sub(" ", s.lower()).split())
    s = unicodedata.normalize("NFKD", s)
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).casefold()
    return " ".join(_NON_WORD.sub(" ", s).split())


def split_authors(s: str) -> list[str]:
    """Split an author string ("A. Smith, B. Jones and C. Lee (MIT)") into names.

    Parenthesised affiliations are dropped, a trailing "Jr."/"III" stays with its name."""
    s = clean_text(s)
    while "(" in s:
        stripped = _PARENS.sub(" ", s)
        if stripped == s:  # unbalanced parenthesis: leave the rest as it is
            break
        s = stripped
    names: list[str] = []
    for part in _AUTHOR_SEP.split(s):
        part = " ".join(part.split())
        if not part:
            continue
        if names and part.casefold() in _SUFFIXES:
            names[-1] = f"{names[-1]} {part}"
        else:
            names.append(part)
    return names


def uninvert_name(name: str) -> str:
    """ "Keyname Suffix, Forenames" (oai_dc's dc:creator) → "Forenames Keyname Suffix"."""
    name = clean_text(name)
    last, sep, first = name.partition(", ")
    if not sep or not first:
        return name.rstrip(",")
    return f"{first} {last}"


def join_name(keyname: str, forenames: str = "", suffix: str = "") -> str:
    """Parts of a split name (OAI `arXiv` format, Kaggle's authors_parsed) as "First Last Jr"."""
    return clean_text(" ".join(p for p in (forenames, keyname, suffix) if p))


# --- dates as arXiv writes them --------------------------------------------------------

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# "Mon, 2 Apr 2007 19:18:42 GMT" (arXivRaw, Kaggle, RSS); parsed by hand because
# email.utils is several times slower and this runs once per version of 2.5M papers.
_RFC2822 = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"\s*(GMT|UTC?|Z|[+-]\d{4})?\s*",
    re.ASCII,
)


def parse_rfc2822(value: str | None) -> datetime | None:
    """An RFC 2822 date as aware UTC; None when absent or unreadable."""
    if not value:
        return None
    m = _RFC2822.fullmatch(value)
    if m is None:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    day, mon, year, hh, mm, ss, zone = m.groups()
    month = _MONTHS.get(mon.lower())
    if month is None:
        return None
    try:
        parsed = datetime(int(year), month, int(day), int(hh), int(mm), int(ss or 0), tzinfo=UTC)
    except ValueError:
        return None
    if zone and zone[0] in "+-":
        offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * (1 if zone[0] == "+" else -1)
        parsed -= timedelta(minutes=offset)
    return parsed


def parse_iso_datetime(value: str | None) -> datetime | None:
    """An ISO 8601 timestamp or a bare YYYY-MM-DD date as aware UTC (a date is midnight UTC);
    None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:  # arXiv writes Z; a bare time or date is UTC too
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
