"""The FAQ (Cool Papers' "Kimi" button): six questions about a paper, answered by an LLM.

Shared by the web (which requests and streams an answer) and the LLM pool (which generates
it): the questions in English and Chinese, the prompt template (built in, or
`settings.faq_prompt_path`), the chat messages for one paper, the cache key with the Redis
names derived from it, a small Markdown-ish block parser for showing answers as text (never
as raw HTML), and the answer cache, table `faqs`: read by the web, written only by the LLM
pool's job, and written whole (one row in one transaction once the answer is complete,
never a part).

The prompt holds the title, authors and abstract only: no PDF text extractor is installed,
so `PaperText.full_text` is always None here and the prompt tells the model so (it is asked
not to invent experimental details the abstract does not give). When an extractor lands,
fill `full_text` and `paper_block` puts it in the prompt instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, case, exists, select

from app.artifacts.base import ArtifactTable
from app.db.models import Announcement, Faq, Paper

faqs_t = Faq.__table__
papers_t = Paper.__table__
announcements_t = Announcement.__table__
FAQS = ArtifactTable(faqs_t, key=("arxiv_id", "version", "lang", "model"))

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")
LANGUAGE_NAMES: dict[Lang, str] = {"en": "English", "zh": "Simplified Chinese (简体中文)"}

QUESTIONS: dict[Lang, tuple[str, ...]] = {
    "en": (
        "What problem does this paper try to solve?",
        "What related work is there?",
        "How does the paper solve the problem?",
        "What experiments were carried out?",
        "What could be explored further?",
        "Summarise the main content of the paper.",
    ),
    "zh": (
        "这篇论文试图解决什么问题？",
        "有哪些相关研究？",
        "论文如何解决这个问题？",
        "论文做了哪些实验？",
        "有什么可以进一步探索的点？",
        "总结一下论文的主要内容。",
    ),
}

# The arq function the LLM pool registers; the web enqueues by this name only.
JOB_FUNCTION = "generate_faq"

# What the job writes to a key's Redis stream, in order: `start` (readers clear what they
# have), `delta`s, possibly `reset` (a broken attempt starts over: clear again), and one
# terminal `done` (with the whole answer, as stored) or `error`.
EVENTS = ("start", "delta", "reset", "done", "error")
TERMINAL = frozenset({"done", "error"})

_LANG_ALIASES: dict[str, Lang] = {
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "english": "en",
    "zh": "zh",
    "zh-cn": "zh",
    "zh-hans": "zh",
    "zh-sg": "zh",
    "cn": "zh",
    "chinese": "zh",
}


class UnknownLanguage(ValueError):
    """Not one of the FAQ's languages."""


def parse_lang(raw: str | None) -> Lang:
    """`en` or `zh` from a query parameter (a few common spellings accepted)."""
    text = (raw or "en").strip().lower().replace("_", "-")
    lang = _LANG_ALIASES.get(text)
    if lang is None:
        shown = (raw or "")[:20]
        raise UnknownLanguage(f"unknown language {shown!r}: use en or zh")
    return lang


# --- the prompt ---------------------------------------------------------------------------

BUILTIN_TEMPLATE = """\
[system]
You are a careful research assistant who explains scientific papers to researchers. Answer
from the paper text you are given; when it does not say something, say so instead of
guessing. Write in {language}.

[user]
Here is an arXiv paper.

{paper}

{source}

Answer these questions about it, one Markdown section each, with the question as a
"## " heading, in this order:

{questions}

Keep each answer short and specific: a few sentences or a short bullet list. Write
formulas in TeX between $ signs. Answer in {language}.
"""

# The placeholders a template may use; anything else in braces is left as written.
PLACEHOLDERS = (
    "title",
    "authors",
    "abstract",
    "arxiv_id",
    "version",
    "paper",
    "source",
    "questions",
    "language",
)
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_SECTION = re.compile(r"^\[(system|user)\][ \t]*$", re.MULTILINE)

SOURCE_NOTES: dict[str, str] = {
    "abstract": (
        "Only the title, authors and abstract are available (not the full text): answer "
        "from them, and where a question needs the full paper (related work, experiment "
        "details), say what the abstract tells and that the rest is not in it."
    ),
    "full_text": "The full text of the paper follows the abstract.",
}


class PromptError(ValueError):
    """The configured prompt file is missing, unreadable or empty."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt template: an optional system message and the user message."""

    system: str | None
    user: str
    source: str  # "built-in", or the file it came from

    @property
    def digest(self) -> str:
        """Identifies the template text (stored with each answer made from it)."""
        text = f"{self.system or ''}\0{self.user}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_template(text: str, source: str = "built-in") -> Prompt:
    """A template: `[system]` and `[user]` lines start the two messages; without them the
    whole text is the user message (and there is no system message)."""
    parts = _SECTION.split(text)
    if len(parts) == 1:
        user = text.strip()
        system = None
    else:
        sections: dict[str, str] = {}
        if parts[0].strip():  # text before the first marker belongs to the user message
            sections["user"] = parts[0].strip()
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            sections[name] = (sections.get(name, "") + "\n\n" + body.strip()).strip()
        system = sections.get("system") or None
        user = sections.get("user", "")
    if not user:
        raise PromptError(f"the prompt from {source} has no user message")
    return Prompt(system=system, user=user, source=source)


def load_prompt(path: Path | None) -> Prompt:
    """The built-in template, or the one in `path` (`settings.faq_prompt_path`)."""
    if path is None:
        return parse_template(BUILTIN_TEMPLATE)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"cannot read the FAQ prompt file {path}: {exc}") from None
    return parse_template(text, source=str(path))


@dataclass(frozen=True, slots=True)
class PaperText:
    """What the prompt is made from."""

    arxiv_id: str
    version: int  # 0 when the store does not know it
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    # Always None for now: no PDF text extractor is installed (see the module docstring).
    full_text: str | None = None


def _clean(text: str) -> str:
    return " ".join(text.split())


def paper_block(paper: PaperText) -> str:
    lines = [f"Title: {_clean(paper.title)}"]
    if paper.authors:
        lines.append(f"Authors: {', '.join(_clean(a) for a in paper.authors)}")
    lines.append(f"arXiv: {paper.arxiv_id}" + (f"v{paper.version}" if paper.version else ""))
    lines.append(f"Abstract: {_clean(paper.abstract)}")
    if paper.full_text:
        lines.append(f"Full text:\n{paper.full_text.strip()}")
    return "\n".join(lines)


def _fill(template: str, values: dict[str, str]) -> str:
    # Only known placeholders are replaced, and replaced once: a `{` in an abstract or in a
    # user's template never raises or expands.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render_messages(prompt: Prompt, paper: PaperText, lang: Lang) -> list[dict[str, str]]:
    """The chat-completions `messages` for one paper and language."""
    values = {
        "title": _clean(paper.title),
        "authors": ", ".join(_clean(a) for a in paper.authors),
        "abstract": _clean(paper.abstract),
        "arxiv_id": paper.arxiv_id,
        "version": str(paper.version or ""),
        "paper": paper_block(paper),
        "source": SOURCE_NOTES["full_text" if paper.full_text else "abstract"],
        "questions": "\n".join(f"{i}. {q}" for i, q in enumerate(QUESTIONS[lang], 1)),
        "language": LANGUAGE_NAMES[lang],
    }
    messages = []
    if prompt.system:
        messages.append({"role": "system", "content": _fill(prompt.system, values).strip()})
    messages.append({"role": "user", "content": _fill(prompt.user, values).strip()})
    return messages


# --- the cache key and its Redis names ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaqKey:
    """One cached answer: a paper's version, a language and a model."""

    arxiv_id: str
    version: int
    lang: Lang
    model: str

    @property
    def digest(self) -> str:
        text = "\0".join((self.arxiv_id, str(self.version), self.lang, self.model))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def job_id(self, queue: str) -> str:
        """The arq job id: one job per key, so concurrent requests share one generation.
        Prefixed by the queue, as the fetch pool does, so deployments sharing a Redis (and
        test runs) never collide; the model only through the digest (names hold ':', '/')."""
        return f"{queue}:faq:{self.arxiv_id}:v{self.version}:{self.lang}:{self.digest}"

    def stream_key(self, queue: str) -> str:
        """The Redis stream the job writes its progress to, for every reader."""
        return f"{queue}:faq-stream:{self.digest}"


# --- the answer cache ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaqRow:
    key: FaqKey
    content: str
    prompt_hash: str
    finish_reason: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "arxiv_id": self.key.arxiv_id,
            "version": self.key.version,
            "lang": self.key.lang,
            "model": self.key.model,
            "content": self.content,
            "prompt_hash": self.prompt_hash,
            "finish_reason": self.finish_reason,
            "created_at": self.created_at.isoformat(),
        }


def paper_text(conn: Connection, arxiv_id: str) -> PaperText | None:
    """The paper as the prompt needs it (its current version), or None if not stored."""
    row = conn.execute(
        select(
            papers_t.c.arxiv_id,
            papers_t.c.version,
            papers_t.c.title,
            papers_t.c.abstract,
            papers_t.c.authors,
        ).where(papers_t.c.arxiv_id == arxiv_id)
    ).first()
    if row is None:
        return None
    return PaperText(
        arxiv_id=row.arxiv_id,
        version=row.version or 0,
        title=row.title,
        abstract=row.abstract,
        authors=tuple(row.authors or ()),
    )


def _faq_row(key: FaqKey, row: Any) -> FaqRow:
    created = row.created_at
    if created.tzinfo is None:  # SQLite hands back naive UTC
        created = created.replace(tzinfo=UTC)
    return FaqRow(key, row.content, row.prompt_hash, row.finish_reason, created)


def get_faq(conn: Connection, key: FaqKey) -> FaqRow | None:
    row = conn.execute(
        select(faqs_t).where(
            faqs_t.c.arxiv_id == key.arxiv_id,
            faqs_t.c.version == key.version,
            faqs_t.c.lang == key.lang,
            faqs_t.c.model == key.model,
        )
    ).first()
    return None if row is None else _faq_row(key, row)


def older_answer(conn: Connection, key: FaqKey) -> FaqRow | None:
    """The answer in `key.lang` written for the newest version older than `key.version`
    (the configured model's first, then the latest written), or None. Shown, marked stale,
    while the paper's current version has no answer of its own."""
    row = conn.execute(
        select(faqs_t)
        .where(
            faqs_t.c.arxiv_id == key.arxiv_id,
            faqs_t.c.lang == key.lang,
            faqs_t.c.version < key.version,
        )
        .order_by(
            faqs_t.c.version.desc(),
            case((faqs_t.c.model == key.model, 0), else_=1),
            faqs_t.c.created_at.desc(),
        )
        .limit(1)
    ).first()
    if row is None:
        return None
    return _faq_row(FaqKey(key.arxiv_id, row.version, key.lang, row.model), row)


def regeneration_keys(conn: Connection, day: date, category: str, model: str) -> list[FaqKey]:
    """The answers to write again after a day's list is stored: for each paper of the
    (category, day) list whose current version has no answer by `model` in a language
    that an older version of it has one in (a reader asked for it once), that version's
    key, in the list's order (by id), each language once."""
    older = faqs_t.alias("older")
    current = faqs_t.alias("current")
    listed = select(announcements_t.c.arxiv_id).where(
        announcements_t.c.category == category, announcements_t.c.day == day
    )
    answered = exists().where(
        current.c.arxiv_id == papers_t.c.arxiv_id,
        current.c.version == papers_t.c.version,
        current.c.lang == older.c.lang,
        current.c.model == model,
    )
    rows = conn.execute(
        select(papers_t.c.arxiv_id, papers_t.c.version, older.c.lang)
        .distinct()
        .join(older, older.c.arxiv_id == papers_t.c.arxiv_id)
        .where(
            papers_t.c.arxiv_id.in_(listed),
            older.c.version < papers_t.c.version,
            ~answered,
        )
        .order_by(papers_t.c.arxiv_id, older.c.lang)
    )
    return [
        FaqKey(r.arxiv_id, r.version, parse_lang(r.lang), model)
        for r in rows
        if r.lang in LANGS  # a row from a language since dropped is left alone
    ]


def save_faq(
    conn: Connection,
    key: FaqKey,
    content: str,
    *,
    prompt_hash: str,
    finish_reason: str | None,
    now: datetime | None = None,
) -> FaqRow:
    """Store a complete answer (replacing an older one for the same key)."""
    if not content.strip():
        raise ValueError("refusing to cache an empty FAQ")
    created = now or datetime.now(UTC)
    values = {
        "arxiv_id": key.arxiv_id,
        "version": key.version,
        "lang": key.lang,
        "model": key.model,
        "content": content,
        "prompt_hash": prompt_hash,
        "finish_reason": finish_reason,
        "created_at": created,
    }
    FAQS.upsert(
        conn,
        [values],
        update=lambda new, old: {
            k: new[k] for k in ("content", "prompt_hash", "finish_reason", "created_at")
        },
    )
    return FaqRow(key, content, prompt_hash, finish_reason, created)


def find(
    conn: Connection, arxiv_id: str, lang: Lang, model: str
) -> tuple[PaperText | None, FaqKey | None, FaqRow | None]:
    """The paper, the key of its current version's answer, and that answer if stored."""
    paper = paper_text(conn, arxiv_id)
    if paper is None:
        return None, None, None
    key = FaqKey(arxiv_id, paper.version, lang, model)
    return paper, key, get_faq(conn, key)


# --- showing an answer: a small Markdown subset, as text ---------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """`kind`: heading | paragraph | ul | ol. `lines` are inline texts (one per list item)."""

    kind: str
    lines: tuple[str, ...]


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+•]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+(.*)$")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")


def blocks(text: str) -> list[Block]:
    """Headings, paragraphs and lists from Markdown-ish text (what LLMs write). Everything
    else stays literal text; callers escape it. static/papershelf.js mirrors this."""
    out: list[Block] = []
    kind: str | None = None
    lines: list[str] = []

    def flush() -> None:
        nonlocal kind, lines
        if kind is not None and lines:
            out.append(Block(kind, tuple(lines)))
        kind, lines = None, []

    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line or re.fullmatch(r"[-*_]{3,}", line):
            flush()
            continue
        if m := _HEADING.match(raw):
            flush()
            out.append(Block("heading", (m.group(1),)))
            continue
        for list_kind, pattern in (("ul", _BULLET), ("ol", _NUMBERED)):
            if m := pattern.match(raw):
                if kind != list_kind:
                    flush()
                    kind = list_kind
                lines.append(m.group(1))
                break
        else:
            if kind in ("ul", "ol") and raw[:1].isspace() and lines:
                lines[-1] += " " + line  # a wrapped list item
            else:
                if kind != "paragraph":
                    flush()
                    kind = "paragraph"
                lines.append(line)
    flush()
    return out


def spans(text: str) -> list[tuple[bool, str]]:
    """(bold, text) runs of one inline text (`**bold**` / `__bold__`)."""
    out: list[tuple[bool, str]] = []
    last = 0
    for m in _BOLD.finditer(text):
        if m.start() > last:
            out.append((False, text[last : m.start()]))
        out.append((True, m.group(1) or m.group(2)))
        last = m.end()
    if last < len(text):
        out.append((False, text[last:]))
    return out
