"""What changed between two versions of a paper's text: word-level differences, per field.

Pure: texts in, operations out. A text is split into words, single punctuation marks and the
spaces between them, so "results." → "results;" is one changed mark, not a changed word. The
operations are runs of `EQUAL`, `DELETED` and `INSERTED` text; `to_html` renders them with
every piece escaped, deletions in `<del>` and insertions in `<ins>`, so hostile text in a
title or abstract stays text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from html import escape
from typing import Literal

from markupsafe import Markup

Op = Literal["=", "-", "+"]
EQUAL: Op = "="
DELETED: Op = "-"
INSERTED: Op = "+"

# The fields a reader compares, in the order shown.
FIELDS: tuple[tuple[str, str], ...] = (
    ("title", "Title"),
    ("authors", "Authors"),
    ("abstract", "Abstract"),
    ("comments", "Comments"),
    ("journal_ref", "Journal-ref"),
)
# Past this many tokens a side, the texts are shown as replaced whole: matching is quadratic
# at worst, and no abstract comes near it.
MAX_TOKENS = 6000

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def tokens(text: str) -> list[str]:
    """Words, single punctuation marks and runs of whitespace, in order; joined, the text."""
    return _TOKEN.findall(text)


def _merge(ops: list[tuple[Op, str]]) -> list[tuple[Op, str]]:
    """Adjacent runs of one kind joined; a change's deletions before its insertions."""
    out: list[tuple[Op, str]] = []
    for op, text in ops:
        if not text:
            continue
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))
    return out


def word_diff(old: str, new: str) -> list[tuple[Op, str]]:
    """The runs that turn `old` into `new`: equal text, deleted text, inserted text. Joining
    the equal and deleted runs gives `old`; the equal and inserted runs give `new`."""
    a, b = tokens(old), tokens(new)
    if old == new:
        return [(EQUAL, old)] if old else []
    if len(a) > MAX_TOKENS or len(b) > MAX_TOKENS:
        return _merge([(DELETED, old), (INSERTED, new)])
    raw: list[tuple[str, str, str]] = []  # (tag, old text, new text)
    for opcode, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        raw.append((opcode, "".join(a[i1:i2]), "".join(b[j1:j2])))
    # A lone space kept between two changes reads as noise ("<del>a</del> <ins>b</ins>
    # <del>c</del>"): it joins the change around it, so a rewritten phrase is one change.
    for k in range(1, len(raw) - 1):
        tag, text, _ = raw[k]
        between_changes = raw[k - 1][0] != "equal" and raw[k + 1][0] != "equal"
        if tag == "equal" and not text.strip() and between_changes:
            raw[k] = ("replace", text, text)
    ops: list[tuple[Op, str]] = []
    pending_del: list[str] = []
    pending_ins: list[str] = []

    def flush() -> None:
        ops.append((DELETED, "".join(pending_del)))
        ops.append((INSERTED, "".join(pending_ins)))
        pending_del.clear()
        pending_ins.clear()

    for tag, old_text, new_text in raw:
        if tag == "equal":
            flush()
            ops.append((EQUAL, old_text))
        else:
            pending_del.append(old_text)
            pending_ins.append(new_text)
    flush()
    return _merge(ops)


def to_html(ops: Sequence[tuple[Op, str]]) -> Markup:
    """The runs as HTML: every piece escaped, deletions in <del>, insertions in <ins>."""
    parts = []
    for op, text in ops:
        piece = escape(text, quote=True)
        if op == DELETED:
            piece = f"<del>{piece}</del>"
        elif op == INSERTED:
            piece = f"<ins>{piece}</ins>"
        parts.append(piece)
    return Markup("".join(parts))


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs between two versions, with the runs that say how."""

    field: str  # title | authors | abstract | comments | journal_ref
    label: str
    ops: tuple[tuple[Op, str], ...]

    @property
    def html(self) -> Markup:
        return to_html(self.ops)

    def to_json(self) -> dict[str, object]:
        return {"field": self.field, "label": self.label, "diff": [list(op) for op in self.ops]}


def field_text(field: str, value: object) -> str:
    """A field's value as the text compared: authors joined as a card lists them."""
    if value is None:
        return ""
    if field == "authors" and isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def changes(old: dict[str, object], new: dict[str, object]) -> list[FieldChange]:
    """The fields (of `FIELDS`) whose text differs between two versions, each with its
    word-level diff; empty when the text is the same."""
    out = []
    for name, label in FIELDS:
        before, after = field_text(name, old.get(name)), field_text(name, new.get(name))
        if before != after:
            out.append(FieldChange(name, label, tuple(word_diff(before, after))))
    return out
