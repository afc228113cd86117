"""arXiv's subject taxonomy: groups → archives → categories, aliases and retired archives.

The data is `app/data/taxonomy.json`, a trimmed copy of arXiv's own definitions (MIT, Cornell;
the file names its source) so a clone works without the shared data directory.

Category ids are case-sensitive as arXiv writes them ("cs.CL", "cond-mat.str-el"). Lookups
try the exact id first (the parsers' hot path) and then fall back to a case-insensitive match,
so "CS.cl" typed into a URL still resolves to "cs.CL"; no two ids differ only by case.
Canonical ids: an alias resolves to the id arXiv shows (cs.NA → math.NA, math.IT → cs.IT) and a
retired archive to its successor (cmp-lg → cs.CL). Legacy primary archives that are still
categories (astro-ph, cond-mat, q-bio) stay themselves: old papers really carry them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

# Syntax only: "cs.AI", "hep-th", "cond-mat.mes-hall", "astro-ph.CO", "q-fin.EC".
_CATEGORY_SYNTAX = re.compile(r"[a-z]+(?:-[a-z]+)*(?:\.[A-Za-z]+(?:-[a-z]+)*)?")
# Terms that are clearly classification codes: ACM ("I.2.7", "F.2.2"), MSC ("68T05", "68Txx",
# "68-02", "68"). Used to decide whether "68T05, 68T50" is a list or one free-text class.
_CODE_SYNTAX = re.compile(
    r"[A-K](?:\.\d+|\.m)*(?:\.\d+|\.m)?|\d{2}(?:[A-Z](?:\d{2}|xx)|-(?:\d{2}|xx))?"
)
_SPLIT_TERMS = re.compile(r"[,;\s]+")
# Placeholders some sources put where a class would be; they carry no meaning.
_JUNK_TERMS = frozenset({"", "n/a", "na", "none", "null", "-"})


def looks_like_category(s: str) -> bool:
    """True when `s` has the shape of an arXiv category id, known or not."""
    return _CATEGORY_SYNTAX.fullmatch(s) is not None


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name: str
    active: bool
    archive: str
    group: str
    description: str | None = None
    general: bool = False  # the archive's catch-all ("cs.OH", "math.GM")


@dataclass(frozen=True, slots=True)
class Archive:
    id: str
    name: str
    active: bool
    group: str
    categories: tuple[str, ...]  # every category filed under it, alias ids included


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    active: bool
    archives: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ArchiveNode:
    archive: Archive
    categories: tuple[Category, ...]


@dataclass(frozen=True, slots=True)
class GroupNode:
    group: Group
    archives: tuple[ArchiveNode, ...]


@dataclass(slots=True)
class Taxonomy:
    groups: dict[str, Group]
    archives: dict[str, Archive]
    categories: dict[str, Category]
    aliases: dict[str, str]  # alias id → canonical id
    subsumed: dict[str, str]  # retired archive → category that replaced it
    legacy_primary: dict[str, str]  # archive → date until which it was itself a primary
    source: str = ""
    _canon: dict[str, str] = field(default_factory=dict, repr=False)
    _canon_fold: dict[str, str] = field(default_factory=dict, repr=False)
    _by_name: dict[str, str] = field(default_factory=dict, repr=False)
    _terms: dict[str, tuple[tuple[bool, str], ...]] = field(default_factory=dict, repr=False)
    _resolved: dict[
        tuple[tuple[str, ...], str | None],
        tuple[str | None, tuple[str, ...], tuple[str, ...]],
    ] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for cid in self.categories:
            target = self.aliases.get(cid) or self.subsumed.get(cid) or cid
            self._canon[cid] = target
            self._canon_fold[cid.casefold()] = target
        # oai_dc subjects are names: "<archive name> - <category name>", or just the category
        # name when the archive is the category ("High Energy Physics - Theory" for hep-th).
        plain: dict[str, set[str]] = {}
        for cat in self.categories.values():
            arch = self.archives[cat.archive]
            full = cat.name if cat.id == arch.id else f"{arch.name} - {cat.name}"
            self._by_name.setdefault(full.casefold(), self._canon[cat.id])
            plain.setdefault(cat.name.casefold(), set()).add(self._canon[cat.id])
        for name, targets in plain.items():
            if len(targets) == 1:  # a bare name only when it is unambiguous
                self._by_name.setdefault(name, next(iter(targets)))

    # --- lookups -------------------------------------------------------------------------

    def canonical(self, cat: str) -> str | None:
        """The canonical category id for `cat` (alias, retired archive, odd case), else None."""
        hit = self._canon.get(cat)
        if hit is not None:
            return hit
        return self._canon_fold.get(cat.strip().casefold())

    def is_known(self, cat: str) -> bool:
        return self.canonical(cat) is not None

    def category(self, cat: str) -> Category | None:
        canon = self.canonical(cat)
        return self.categories.get(canon) if canon else None

    def name(self, cat: str) -> str | None:
        """Full name of the category ("cs.CL" → "Computation and Language"), else None."""
        found = self.category(cat)
        return found.name if found else None

    def from_subject_name(self, subject: str) -> str | None:
        """Category id for an oai_dc subject ("Computer Science - Artificial Intelligence")."""
        return self._by_name.get(" ".join(subject.split()).casefold())

    def categories_in_archive(self, archive: str, *, active_only: bool = True) -> list[Category]:
        """The archive's own categories in arXiv's order, e.g. "cs" → cs.AI … cs.SY."""
        arch = self.archives.get(archive) or self.archives.get(archive.casefold())
        if arch is None:
            return []
        cats = [self.categories[c] for c in arch.categories]
        return [c for c in cats if c.active] if active_only else cats

    def expand(self, token: str) -> list[str]:
        """Canonical categories a user or feed token stands for: an archive ("cs", "math")
        becomes its categories (aliases resolved, legacy primaries kept), a category itself.
        Unknown tokens give []."""
        token = token.strip()
        arch = self.archives.get(token) or self.archives.get(token.casefold())
        if arch is not None:
            out: dict[str, None] = {}
            for cid in arch.categories:
                cat = self.categories[cid]
                if cat.active or cid == arch.id:
                    out[self._canon[cid]] = None
            if out:
                return list(out)
        canon = self.canonical(token)
        return [canon] if canon else []

    def tree(self, *, active_only: bool = True) -> list[GroupNode]:
        """Groups → archives → canonical categories, for a category picker. Alias ids are
        shown only under their canonical archive (cs.NA appears as math.NA under math)."""
        nodes: list[GroupNode] = []
        for group in self.groups.values():
            if active_only and not group.active:
                continue
            arch_nodes: list[ArchiveNode] = []
            for aid in group.archives:
                arch = self.archives[aid]
                if active_only and not arch.active:
                    continue
                cats = tuple(
                    self.categories[c]
                    for c in arch.categories
                    if self._canon[c] == c and (self.categories[c].active or not active_only)
                )
                if cats:
                    arch_nodes.append(ArchiveNode(arch, cats))
            if arch_nodes:
                nodes.append(GroupNode(group, tuple(arch_nodes)))
        return nodes

    # --- sorting raw terms ---------------------------------------------------------------

    def _classify(self, term: str) -> tuple[tuple[bool, str], ...]:
        """(is_category, value) pieces of one raw term; memoised because sources repeat
        the same few hundred terms millions of times."""
        hit = self._terms.get(term)
        if hit is not None:
            return hit
        raw = term.strip()
        pieces = [p for p in _SPLIT_TERMS.split(raw) if p]
        # "cs.CV, cs.MM" and "68T05, 68T50" are lists; "Machine learning, theory" is one class.
        if len(pieces) > 1 and not all(
            _CODE_SYNTAX.fullmatch(p) or self.canonical(p) for p in pieces
        ):
            pieces = [" ".join(raw.split())]
        out: list[tuple[bool, str]] = []
        for piece in pieces:
            canon = self._canon.get(piece) or (
                self.canonical(piece) if looks_like_category(piece.lower()) else None
            )
            if canon:
                out.append((True, canon))
            elif piece.casefold() not in _JUNK_TERMS:
                out.append((False, piece))
        result = tuple(out)
        if len(self._terms) < 100_000:  # bounded: free-text classes could be unbounded
            self._terms[term] = result
        return result

    def partition(self, terms: Iterable[str]) -> tuple[list[str], list[str]]:
        """Split raw category terms into (canonical categories, other classes), both in
        first-seen order without duplicates. Compound terms ("cs.CV, cs.MM") are split."""
        cats: list[str] = []
        classes: list[str] = []
        for term in terms:
            for is_cat, value in self._classify(term):
                bucket = cats if is_cat else classes
                if value not in bucket:
                    bucket.append(value)
        return cats, classes

    def resolve(
        self, terms: Iterable[str], primary: str | None = None
    ) -> tuple[str | None, list[str], list[str]]:
        """A paper's (primary, categories, classes) from its raw terms.

        `primary` defaults to the first category-shaped term (sources list the primary first;
        ACM/MSC codes are not category-shaped). The categories start with the primary. The
        primary is None when it is unknown ("cs.XX") or when no term is an arXiv category:
        the caller reports that record."""
        key = (tuple(terms), primary)
        hit = self._resolved.get(key)
        if hit is None:
            hit = self._resolve(key[0], primary)
            if len(self._resolved) < 200_000:  # bounded; combinations repeat heavily
                self._resolved[key] = hit
        # Fresh lists: records own and may change them.
        return hit[0], list(hit[1]), list(hit[2])

    def _resolve(
        self, terms: tuple[str, ...], primary: str | None
    ) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        if primary is None:
            primary = next((t for t in terms if looks_like_category(t.strip())), None)
        cats, classes = self.partition(terms)
        if primary is not None:
            canon = self.canonical(primary.strip())
            if canon is None:
                return None, tuple(cats), tuple(classes)
            if not cats or cats[0] != canon:
                cats = [canon, *(c for c in cats if c != canon)]
        return (cats[0] if cats else None), tuple(cats), tuple(classes)


def _load(raw: dict[str, Any]) -> Taxonomy:
    cat_rows = raw["categories"]
    arch_rows = raw["archives"]
    by_archive: dict[str, list[str]] = {a["id"]: [] for a in arch_rows}
    for c in cat_rows:
        by_archive[c["archive"]].append(c["id"])
    by_group: dict[str, list[str]] = {g["id"]: [] for g in raw["groups"]}
    for a in arch_rows:
        by_group[a["group"]].append(a["id"])
    return Taxonomy(
        groups={
            g["id"]: Group(g["id"], g["name"], g["active"], tuple(by_group[g["id"]]))
            for g in raw["groups"]
        },
        archives={
            a["id"]: Archive(
                a["id"], a["name"], a["active"], a["group"], tuple(by_archive[a["id"]])
            )
            for a in arch_rows
        },
        categories={
            c["id"]: Category(
                c["id"],
                c["name"],
                c["active"],
                c["archive"],
                c["group"],
                c.get("description"),
                c.get("general", False),
            )
            for c in cat_rows
        },
        aliases=dict(raw["category_aliases"]),
        subsumed=dict(raw["archives_subsumed"]),
        legacy_primary=dict(raw.get("legacy_archive_as_primary", {})),
        source=raw.get("source", ""),
    )


@cache
def get_taxonomy() -> Taxonomy:
    """The taxonomy, loaded once from the packaged JSON on first use."""
    text = resources.files("app").joinpath("data/taxonomy.json").read_text(encoding="utf-8")
    return _load(json.loads(text))


def canonical(cat: str) -> str | None:
    """Shortcut for `get_taxonomy().canonical(cat)`."""
    return get_taxonomy().canonical(cat)
