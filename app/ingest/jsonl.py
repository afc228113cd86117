"""JSON Lines sources, streamed: daily listing files and the Kaggle arXiv snapshot.

(a) Listing lines (`papers_*.jsonl.gz`): `id, listing_date, title, authors (list), categories
(list, primary first), comment, abstract`. The categories list also carries ACM/MSC codes
("I.2.7", "68T05, 68T50") and compound strings ("cs.CV, cs.MM"): real arXiv categories are
split out and canonicalised, the rest go to `classes`. Each paper gets one announcement per
category on `listing_date`: new for the primary, cross for the others, `position` = the
0-based order of the paper among that day's lines. `version` is None (the listing does not say).

(b) Kaggle snapshot lines: `id, submitter, authors, title, comments, journal-ref, doi,
report-no, categories (space-separated), license, abstract, versions ([{version, created
(RFC 2822)}]), update_date, authors_parsed ([[last, first, suffix]])` → versions, version =
latest, first_submitted_at / last_updated_at from v1 / the latest; authors from
authors_parsed as "First Last Suffix" (the `authors` string when that is missing).

Both take an iterable of raw byte lines (a binary file object works) and yield records lazily.

Error policy: a line that is not JSON, not UTF-8 or not an object, lacks a required field (id,
title, abstract, categories), has an invalid id, or has no known arXiv category becomes a
RecordError (source, 1-based line, the id when readable) and parsing goes on with the next
line. Blank lines are skipped silently. Nothing here raises for bad content.

Speed: the per-line work is one orjson parse, whitespace collapsing (TeX decoding only when a
backslash is present), memoised category lookups and one dataclass; no regex on the fast path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

import orjson

from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.ingest.records import AnnounceKind, Announcement, PaperRecord, RecordError, Version
from app.ingest.text import clean_text, join_name, parse_rfc2822, split_authors
from app.taxonomy import get_taxonomy

_ID_HINT = re.compile(rb'"id"\s*:\s*"([^"\\]{1,64})"')
_NEW = AnnounceKind.NEW
_CROSS = AnnounceKind.CROSS

Item = PaperRecord | RecordError


def _id_hint(raw: bytes) -> str | None:
    """The id of a line too broken to parse, when it can still be seen."""
    m = _ID_HINT.search(raw)
    return m.group(1).decode("utf-8", errors="replace") if m else None


def _line_error(source: str, line: int, raw: bytes, exc: Exception) -> RecordError:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return RecordError(source, line, _id_hint(raw), f"line is not valid UTF-8 ({bad.reason})")
    return RecordError(source, line, _id_hint(raw), f"invalid JSON ({exc})")


def _text(value: object) -> str:
    """A cleaned string field; non-strings count as missing."""
    return clean_text(value) if type(value) is str else ""


def _optional(value: object) -> str | None:
    return _text(value) or None


def _common(
    obj: dict[str, object], source: str, line: int
) -> tuple[str, int | None, str, str] | RecordError:
    """Id, version, title and abstract, or the error that rules the line out."""
    raw_id = obj.get("id")
    if type(raw_id) is not str or not raw_id:
        return RecordError(source, line, None, "missing field 'id'")
    try:
        arxiv_id, version = parse_arxiv_id(raw_id)
    except InvalidArxivId as exc:
        return RecordError(source, line, raw_id, str(exc))
    title = _text(obj.get("title"))
    if not title:
        return RecordError(source, line, arxiv_id, "missing field 'title'")
    abstract = _text(obj.get("abstract"))
    if not abstract:
        return RecordError(source, line, arxiv_id, "missing field 'abstract'")
    return arxiv_id, version, title, abstract


def _objects(
    lines: Iterable[bytes], source: str
) -> Iterator[tuple[int, dict[str, object], tuple[str, int | None, str, str] | RecordError]]:
    """Each usable JSON object with its line number and its common fields (or the error that
    rules it out); lines that are not JSON objects are yielded as errors in the third slot."""
    loads = orjson.loads
    for lineno, raw in enumerate(lines, 1):
        try:
            obj = loads(raw)
        except orjson.JSONDecodeError as exc:
            if raw.strip():
                yield lineno, {}, _line_error(source, lineno, raw, exc)
            continue
        if type(obj) is not dict:
            yield lineno, {}, RecordError(source, lineno, None, "line is not a JSON object")
            continue
        yield lineno, obj, _common(obj, source, lineno)


def iter_listing(lines: Iterable[bytes], source: str) -> Iterator[Item]:
    """Parse listing lines lazily (see the module docstring)."""
    resolve = get_taxonomy().resolve
    days: dict[str, date] = {}
    positions: dict[date, int] = {}
    for lineno, obj, common in _objects(lines, source):
        if isinstance(common, RecordError):
            yield common
            continue
        arxiv_id, version, title, abstract = common
        raw_cats = obj.get("categories")
        if type(raw_cats) is str:
            raw_cats = [raw_cats]
        if type(raw_cats) is not list or not raw_cats:
            yield RecordError(source, lineno, arxiv_id, "missing field 'categories'")
            continue
        primary, cats, classes = resolve([c for c in raw_cats if type(c) is str])
        if primary is None:
            msg = f"unknown or missing primary category in {raw_cats!r}"
            yield RecordError(source, lineno, arxiv_id, msg)
            continue
        announcements: list[Announcement] = []
        raw_day = obj.get("listing_date")
        if isinstance(raw_day, str):
            day = days.get(raw_day)
            if day is None:
                try:
                    day = date.fromisoformat(raw_day)
                except ValueError:
                    yield RecordError(source, lineno, arxiv_id, f"bad listing_date {raw_day!r}")
                    continue
                days[raw_day] = day
            pos = positions.get(day, 0)
            positions[day] = pos + 1
            announcements = [
                Announcement(c, day, _NEW if c == primary else _CROSS, pos) for c in cats
            ]
        elif raw_day is not None:
            yield RecordError(source, lineno, arxiv_id, f"bad listing_date {raw_day!r}")
            continue
        raw_authors = obj.get("authors")
        if type(raw_authors) is list:
            authors = [a for x in raw_authors if (a := _text(x))]
        else:
            authors = split_authors(raw_authors) if type(raw_authors) is str else []
        yield PaperRecord(
            arxiv_id=arxiv_id,
            title=title,
            abstract=abstract,
            authors=authors,
            primary_category=primary,
            categories=cats,
            version=version,
            comments=_optional(obj.get("comment")),
            classes=classes,
            announcements=announcements,
            source="jsonl",
            line=lineno,
        )


def _kaggle_authors(obj: dict[str, Any]) -> list[str]:
    parsed = obj.get("authors_parsed")
    if type(parsed) is list and parsed:
        out: list[str] = []
        for parts in parsed:
            if type(parts) is not list or not parts:
                continue
            strs = [p if type(p) is str else "" for p in parts[:3]]
            strs += [""] * (3 - len(strs))
            name = join_name(strs[0], strs[1], strs[2])
            if name:
                out.append(name)
        if out:
            return out
    raw = obj.get("authors")
    return split_authors(raw) if type(raw) is str else []


def _kaggle_versions(raw: object) -> list[Version]:
    if type(raw) is not list:
        return []
    versions: list[Version] = []
    for v in raw:
        if type(v) is not dict:
            continue
        label = v.get("version")
        if type(label) is not str or not label[1:].isdigit():
            continue
        created = v.get("created")
        versions.append(
            Version(int(label[1:]), parse_rfc2822(created) if type(created) is str else None)
        )
    versions.sort(key=lambda v: v.number)
    return versions


def iter_kaggle(lines: Iterable[bytes], source: str) -> Iterator[Item]:
    """Parse Kaggle snapshot lines lazily (see the module docstring)."""
    resolve = get_taxonomy().resolve
    for lineno, obj, common in _objects(lines, source):
        if isinstance(common, RecordError):
            yield common
            continue
        arxiv_id, version, title, abstract = common
        raw_cats = obj.get("categories")
        if type(raw_cats) is not str or not raw_cats.strip():
            yield RecordError(source, lineno, arxiv_id, "missing field 'categories'")
            continue
        primary, cats, classes = resolve(raw_cats.split())
        if primary is None:
            msg = f"unknown or missing primary category in {raw_cats!r}"
            yield RecordError(source, lineno, arxiv_id, msg)
            continue
        versions = _kaggle_versions(obj.get("versions"))
        yield PaperRecord(
            arxiv_id=arxiv_id,
            title=title,
            abstract=abstract,
            authors=_kaggle_authors(obj),
            primary_category=primary,
            categories=cats,
            version=versions[-1].number if versions else version,
            versions=versions,
            comments=_optional(obj.get("comments")),
            journal_ref=_optional(obj.get("journal-ref")),
            doi=_optional(obj.get("doi")),
            license=_optional(obj.get("license")),
            classes=classes,
            first_submitted_at=versions[0].submitted_at if versions else None,
            last_updated_at=versions[-1].submitted_at if versions else None,
            source="kaggle",
            line=lineno,
        )
