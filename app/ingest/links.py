"""Code, data and project links, and the venue a paper was accepted at, found in its abstract,
comments and journal-ref: what a card shows as badges.

Pure and total: text in, `PaperLinks` out; no input raises. The store runs `find_paper_links`
when it writes a paper, so pages read the result instead of parsing per request.

Links: GitHub, GitLab (and other git hosts), Hugging Face models, datasets and Spaces,
Zenodo and other data archives, and project pages (`*.github.io`, or a URL introduced as a
"project page", "website", "homepage" or "demo"). A code link is a link to a code host.

Venues: a known conference or journal with its year ("Accepted at NeurIPS 2025", "ICLR 2026
(oral)", "CVPR'26", "Findings of ACL 2026", "ICCV 2025 Workshop") in a comment that does not
say it is only submitted or under review; an acronym and year after "accepted", "to appear",
"published" or "presented" for venues this module does not know; else the journal-ref.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

LinkKind = Literal["code", "model", "dataset", "demo", "data", "project"]

#: At most this many links per paper (a card is not a bibliography).
MAX_LINKS = 8
#: Longer text is cut before parsing: no real abstract or comment is this long.
MAX_TEXT = 20_000
_MAX_URL = 500


@dataclass(frozen=True, slots=True)
class Link:
    kind: LinkKind
    url: str
    label: str  # what the badge says, e.g. "GitHub", "HF dataset", "Project page"


@dataclass(frozen=True, slots=True)
class Venue:
    name: str  # normalised: "NeurIPS", "ACL", "IEEE Transactions on Image Processing"
    year: int | None = None
    note: str | None = None  # "Workshop", "Findings", "Oral", "Spotlight"…
    slug: str | None = None  # the venue-list name prefix it is imported under ("nips")

    @property
    def label(self) -> str:
        """E.g. "NeurIPS 2025", "ICLR 2026 Oral", "CVPR 2026 Workshop"."""
        parts = [self.name, str(self.year) if self.year else "", self.note or ""]
        return " ".join(p for p in parts if p)

    @property
    def key(self) -> str | None:
        """The name a venue list of the main conference is imported under (`papershelf
        import --venue`, e.g. "nips2025", "iclr2026"); None for a workshop, or without a
        year."""
        if self.slug is None or self.year is None or self.note == "Workshop":
            return None
        return f"{self.slug}{self.year}"


@dataclass(frozen=True, slots=True)
class PaperLinks:
    links: tuple[Link, ...] = ()
    venue: Venue | None = None

    @property
    def has_code(self) -> bool:
        return any(link.kind == "code" for link in self.links)

    @property
    def empty(self) -> bool:
        return not self.links and self.venue is None

    @property
    def code(self) -> str | None:
        """The first code link's URL."""
        return next((link.url for link in self.links if link.kind == "code"), None)

    def links_json(self) -> list[dict[str, str]]:
        return [{"kind": x.kind, "url": x.url, "label": x.label} for x in self.links]


# --- links ---------------------------------------------------------------------------------

# A URL ends at whitespace, quotes, angle brackets and TeX braces/backslashes.
_URL_CHARS = r"[^\s<>\"'{}\\|^`]"
_FULL_URL = re.compile(rf"https?://{_URL_CHARS}+", re.IGNORECASE)
# Hosts people write without a scheme ("code at github.com/x/y").
_BARE_URL = re.compile(
    r"(?<![\w./@:-])(?:www\.)?"
    r"(?:github\.com|gitlab\.com|huggingface\.co|hf\.co|zenodo\.org|[a-z0-9-]+\.github\.io)"
    rf"(?:/{_URL_CHARS}*)?",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?'\"*"
# Authors' typos that still point somewhere: "https: //github.com/…", "https:github.com/…",
# "https://github.com/ owner/repo".
_BROKEN_SCHEME = re.compile(r"\b(https?):(?!//)\s?/?\s?/?\s?(?=[a-z0-9])", re.IGNORECASE)
_BROKEN_PATH = re.compile(
    r"\b(github\.com|gitlab\.com|huggingface\.co)/\s+(?=[\w.-]+/[\w.-])", re.IGNORECASE
)
_PROJECT_CONTEXT = re.compile(
    r"(?:project|web)\s*(?:page|site|website|homepage)|website|homepage|home\s+page|demos?\b"
    r"|project\s*:|visit\b",
    re.IGNORECASE,
)
_CODE_HOSTS = {
    "github.com": "GitHub",
    "gitlab.com": "GitLab",
    "codeberg.org": "Codeberg",
    "bitbucket.org": "Bitbucket",
    "gitee.com": "Gitee",
    "anonymous.4open.science": "Code",
    "sourceforge.net": "SourceForge",
}
_DATA_HOSTS = {
    "zenodo.org": "Zenodo",
    "figshare.com": "figshare",
    "osf.io": "OSF",
    "dataverse.harvard.edu": "Dataverse",
    "data.mendeley.com": "Mendeley Data",
}
# github.com/<these> are GitHub's own pages, not anyone's code.
_GITHUB_RESERVED = frozenset(
    [
        "about",
        "features",
        "pricing",
        "sponsors",
        "topics",
        "trending",
        "marketplace",
        "login",
        "join",
        "settings",
        "collections",
        "explore",
        "search",
        "notifications",
        "site",
        "security",
        "enterprise",
        "apps",
    ]
)
_HF_SKIP = frozenset(
    ["papers", "blog", "docs", "learn", "posts", "join", "login", "pricing", "tasks"]
)


def _trim(url: str) -> str:
    """Drop trailing punctuation and closing brackets the URL did not open."""
    while url:
        last = url[-1]
        opener = "(" if last == ")" else "["
        if last in _TRAILING or (last in ")]" and url.count(opener) < url.count(last)):
            url = url[:-1]
        else:
            break
    return url


def _urls(text: str) -> list[tuple[int, str]]:
    """(position, URL with a scheme) for every URL in the text, in order."""
    found: list[tuple[int, int, str]] = []
    for m in _FULL_URL.finditer(text):
        found.append((m.start(), m.end(), m.group(0)))
    for m in _BARE_URL.finditer(text):
        if not any(s <= m.start() < e for s, e, _u in found):
            found.append((m.start(), m.end(), "https://" + m.group(0)))
    found.sort()
    out = []
    for start, _end, url in found:
        url = _trim(url)[:_MAX_URL]
        if "." in _host(url):
            out.append((start, url))
    return out


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # e.g. "http://[::1": a malformed IPv6 literal
        return ""


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def classify_url(url: str, context: str = "") -> Link | None:
    """What a badge makes of one URL (`context`: the text just before it), or None when it is
    not a code, data or project link."""
    host = _host(url).removeprefix("www.")
    if not host:
        return None
    path = _segments(urlsplit(url).path)
    if host == "github.com":
        if not path or path[0].lower() in _GITHUB_RESERVED:
            return None
        repo = "/".join(p.removesuffix(".git") for p in path[:2])
        return Link("code", f"https://github.com/{repo}", "GitHub")
    if host in _CODE_HOSTS or host.startswith(("gitlab.", "git.")):
        if not path:
            return None
        return Link("code", url, _CODE_HOSTS.get(host, "GitLab" if "gitlab" in host else "Code"))
    if host in ("huggingface.co", "hf.co"):
        if not path or path[0].lower() in _HF_SKIP:
            return None
        head = path[0].lower()
        if head == "datasets":
            return Link("dataset", url, "HF dataset") if len(path) > 1 else None
        if head == "spaces":
            return Link("demo", url, "HF Space") if len(path) > 1 else None
        if head == "collections":
            return Link("model", url, "HF collection") if len(path) > 1 else None
        return Link("model", url, "HF model")
    if host in _DATA_HOSTS:
        return Link("data", url, _DATA_HOSTS[host]) if path else None
    if host == "doi.org" and path and "zenodo" in path[-1].lower():
        return Link("data", url, "Zenodo")
    if host == "kaggle.com" and path and path[0] == "datasets":
        return Link("data", url, "Kaggle")
    if host.endswith((".github.io", ".gitlab.io")):
        return Link("project", url, "Project page")
    if _PROJECT_CONTEXT.search(context) and host not in ("arxiv.org", "doi.org"):
        return Link("project", url, "Project page")
    return None


# Every pattern above needs one of these (a scheme, or a host written without one); most
# abstracts hold none, and this test is ~50× cheaper than running the patterns.
_LINK_HINTS = ("http", "github", "gitlab", "huggingface", "hf.co", "zenodo")


def _may_link(text: str) -> bool:
    low = text.lower()
    return any(hint in low for hint in _LINK_HINTS)


def find_links(*texts: str | None) -> tuple[Link, ...]:
    """The code, data and project links in these texts (abstract, comments), in order,
    each once; a project page only once."""
    out: dict[tuple[str, str], Link] = {}
    for text in texts:
        if not text or not _may_link(text[:MAX_TEXT]):
            continue
        text = _BROKEN_SCHEME.sub(r"\1://", text[:MAX_TEXT])
        text = _BROKEN_PATH.sub(r"\1/", text)
        for start, url in _urls(text):
            # The clause before the URL: "Project page: https://…", "code at https://…".
            context = re.split(r"[.;|()]\s", text[max(0, start - 60) : start])[-1]
            link = classify_url(url, context)
            if link is None:
                continue
            key = (link.kind, link.url.lower().rstrip("/"))
            if key not in out:
                out[key] = link
    return tuple(out.values())[:MAX_LINKS]


# --- venues --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Known:
    name: str
    pattern: str  # regex alternatives, matched case-insensitively
    slug: str | None
    strict: bool = False  # must be written in capitals (ACL, KDD, CHI: also English words)
    journal: bool = False  # journals may be named without a year


def _k(name: str, pattern: str | None = None, slug: str | None = "", **kw: bool) -> _Known:
    return _Known(name, pattern or re.escape(name), name.lower() if slug == "" else slug, **kw)


_KNOWN: tuple[_Known, ...] = (
    # The venue lists (papercopilot/paperlists) keep NeurIPS under its old name.
    _k("NeurIPS", r"neurips|nips", slug="nips"),
    _k("ICLR"),
    _k("ICML"),
    _k("CVPR"),
    _k("ICCV"),
    _k("ECCV"),
    _k("WACV"),
    _k("BMVC"),
    _k("ACCV"),
    _k("3DV", strict=True),
    _k("EMNLP"),
    _k("NAACL"),
    _k("EACL"),
    _k("AACL", r"aacl(?:-ijcnlp)?|ijcnlp-aacl"),
    _k("ACL", strict=True),
    _k("COLING"),
    _k("LREC", r"lrec(?:-coling)?"),
    _k("COLM", strict=True),
    _k("CoNLL", strict=True),
    _k("Interspeech"),
    _k("ICASSP"),
    _k("AAAI"),
    _k("IJCAI"),
    _k("ECAI", strict=True),
    _k("AAMAS"),
    _k("AISTATS"),
    _k("UAI", strict=True),
    _k("COLT", strict=True),
    _k("KDD", r"sigkdd|kdd", strict=True),
    _k("WWW", r"www|thewebconf|the\s+web\s+conference", strict=True),
    _k("SIGIR"),
    _k("CIKM"),
    _k("WSDM"),
    _k("RecSys", r"recsys"),
    _k("ECIR"),
    _k("ICDM"),
    _k("ICDE"),
    _k("SIGMOD"),
    _k("VLDB"),
    _k("MICCAI"),
    _k("ISBI"),
    _k("MIDL"),
    _k("SIGGRAPH Asia", r"siggraph\s+asia"),
    _k("SIGGRAPH"),
    _k("ICRA"),
    _k("IROS"),
    _k("CoRL", r"corl", strict=True),
    _k("ACM MM", r"acm\s*mm|acm\s+multimedia", slug="acmmm"),
    _k("ICME", strict=True),
    _k("ICIP", strict=True),
    _k("CHI", strict=True),
    _k("UIST"),
    _k("CSCW"),
    _k("ICSE", strict=True),
    _k("MLSys", r"mlsys"),
    _k("IJCNN"),
    _k("ICANN"),
    _k("EMBC", strict=True),
    _k("TMLR", r"tmlr|transactions\s+on\s+machine\s+learning\s+research", journal=True),
    _k("JMLR", r"jmlr|journal\s+of\s+machine\s+learning\s+research", journal=True),
    _k(
        "TPAMI",
        r"t-?pami|(?:ieee\s+)?transactions\s+on\s+pattern\s+analysis\s+and\s+machine\s+"
        r"intelligence",
        journal=True,
    ),
    _k("IJCV", r"ijcv|international\s+journal\s+of\s+computer\s+vision", journal=True),
    _k("TIP", r"(?:ieee\s+)?transactions\s+on\s+image\s+processing", journal=True),
)
_BY_GROUP = {f"v{i}": k for i, k in enumerate(_KNOWN)}
_ACRONYMS = "|".join(f"(?P<v{i}>{k.pattern})" for i, k in enumerate(_KNOWN))
# Four digits after any short separator; two digits only right after the name or a ' or -
# ("AAAI-26", "ICLR'26", "CVPR26"), so "ACL 21 pages" is not ACL 2021.
_YEAR_AFTER = r"(?:[\s\-'’]{0,2}(?P<y4>(?:19|20)\d\d)|[-'’]?(?P<y2>\d\d))(?!\d)"
_KNOWN_RE = re.compile(
    rf"(?<![A-Za-z0-9])(?:(?P<before>(?:19|20)\d\d)\s+)?(?:{_ACRONYMS})(?P<w>W)?"
    rf"(?![A-Za-z])(?:{_YEAR_AFTER})?",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"submitted|submission|under\s+review|in\s+review|pre-?review|rejected|withdrawn"
    r"|review\s+version|preprint\s+of\s+a\s+paper\s+under|will\s+be\s+submitted",
    re.IGNORECASE,
)
_ACCEPTED = re.compile(
    r"accepted|to\s+appear|appears?\b|appeared|published|presented|camera[\s-]*ready"
    r"|proceedings|in\s+press",
    re.IGNORECASE,
)
# An acronym and year for a venue this module does not know, after an acceptance word.
_GENERIC = re.compile(
    r"(?<![A-Za-z0-9])(?P<acr>[A-Z][A-Za-z]{0,3}[A-Z][A-Za-z]{0,8})(?:\)\s*|[\s\-'’]{0,2})"
    r"(?P<y4>(?:19|20)\d\d)(?!\d)"
)
_NOT_VENUES = frozenset(
    [
        "IEEE",
        "ACM",
        "CVF",
        "AI",
        "ML",
        "LLM",
        "LLMS",
        "NLP",
        "USA",
        "UK",
        "EU",
        "PMLR",
        "LNCS",
        "LNAI",
        "CEUR",
        "PDF",
        "ARXIV",
        "IJCNLP",
    ]
)
_NOTES = (
    ("Workshop", re.compile(r"workshop", re.IGNORECASE)),
    ("Findings", re.compile(r"findings", re.IGNORECASE)),
    ("Oral", re.compile(r"\boral\b", re.IGNORECASE)),
    ("Spotlight", re.compile(r"spotlight", re.IGNORECASE)),
    ("Highlight", re.compile(r"\bhighlight\b", re.IGNORECASE)),
)
_CLAUSES = re.compile(r";|\||\.\s+(?=[A-Z])|\n\s*\n")


def _year(y4: str | None, y2: str | None, before: str | None) -> int | None:
    if y4:
        return int(y4)
    if y2:
        return 2000 + int(y2)
    return int(before) if before else None


def _note(clause: str, workshop_suffix: bool) -> str | None:
    if workshop_suffix:
        return "Workshop"
    return next((name for name, rx in _NOTES if rx.search(clause)), None)


def _known_in(clause: str, *, accepted: bool) -> Venue | None:
    """The first known venue in a clause, with its year (journals may have none)."""
    for m in _KNOWN_RE.finditer(clause):
        group = next(g for g in _BY_GROUP if m.group(g) is not None)
        known = _BY_GROUP[group]
        written = m.group(group)
        if known.strict and written != written.upper() and written != known.name:
            continue  # "acl", "chi": words, not venues
        year = _year(m.group("y4"), m.group("y2"), m.group("before"))
        if year is None:
            # "2026 IEEE/CVF Conference on … (CVPR)": the clause's one year.
            years = set(re.findall(r"(?<!\d)((?:19|20)\d\d)(?!\d)", clause))
            if len(years) == 1 and (accepted or "(" + written + ")" in clause):
                year = int(years.pop())
        if year is None and not (known.journal and accepted):
            continue
        if year is not None and not 1980 <= year <= 2100:
            continue
        # "NSLP@LREC 2026": a workshop held at the conference.
        at = clause[: m.start()].rstrip().endswith("@")
        return Venue(known.name, year, _note(clause, bool(m.group("w")) or at), known.slug)
    return None


def _generic_in(clause: str) -> Venue | None:
    accepted = _ACCEPTED.search(clause)
    if accepted is None:
        return None
    for m in _GENERIC.finditer(clause, accepted.end()):
        acronym = m.group("acr")
        if acronym.upper() in _NOT_VENUES or sum(c.isupper() for c in acronym) < 2:
            continue
        year = int(m.group("y4"))
        return Venue(acronym, year, _note(clause, False), acronym.lower())
    return None


def find_venue(comments: str | None, journal_ref: str | None = None) -> Venue | None:
    """Where the paper was accepted or published, from its comments and journal-ref."""
    if journal_ref:
        ref = " ".join(journal_ref[:MAX_TEXT].split())
        found = _known_in(ref, accepted=True)
        if found is not None:
            return found
    if comments:
        text = " ".join(comments[:MAX_TEXT].split())
        clauses = [c for c in _CLAUSES.split(text) if c.strip()]
        # "MICCAI 2026; Under review": a bare venue means accepted only if nothing says not.
        doubtful = _NEGATIVE.search(text) is not None
        for clause in clauses:
            if _NEGATIVE.search(clause):
                continue
            accepted = bool(_ACCEPTED.search(clause))
            if doubtful and not accepted:
                continue
            found = _known_in(clause, accepted=accepted)
            if found is not None:
                return found
        for clause in clauses:
            if not _NEGATIVE.search(clause) and (found := _generic_in(clause)) is not None:
                return found
    if journal_ref:
        return _journal(" ".join(journal_ref[:MAX_TEXT].split()))
    return None


def _journal(ref: str) -> Venue | None:
    """A journal-ref this module does not know: its name (up to the volume or year) and
    year, e.g. "Phys. Rev. Lett. 120, 123 (2018)" → "Phys. Rev. Lett." 2018."""
    years = re.findall(r"(?<!\d)((?:19|20)\d\d)(?!\d)", ref)
    name = re.split(r"\s*(?:,|\(|\bvol\b|\bvolume\b|\d)", ref, maxsplit=1)[0].rstrip(" ,:-")
    if len(name) < 3 or not any(c.isalpha() for c in name):
        return None
    return Venue(name[:80], int(years[-1]) if years else None)


def find_paper_links(
    abstract: str | None, comments: str | None, journal_ref: str | None = None
) -> PaperLinks:
    """Everything a card's badges show, for one paper."""
    return PaperLinks(find_links(abstract, comments), find_venue(comments, journal_ref))
