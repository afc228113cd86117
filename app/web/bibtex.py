"""BibTeX entries for papers (the `/arxiv/{ids}/bibtex` download): pure formatting of a
`PaperCard`, no I/O."""

from __future__ import annotations

import re

from app.listing import PaperCard


def bib_value(text: str) -> str:
    """A field value on one line; an unbalanced brace would end the field early, so braces
    are dropped then."""
    text = " ".join(text.split())
    depth = 0
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            break
    return text if depth == 0 else text.replace("{", "").replace("}", "")


def bibtex_entry(card: PaperCard) -> str:
    """One `@misc` entry keyed by first author's surname, year and first long title word."""
    year = (
        card.first_submitted_at.year
        if card.first_submitted_at
        else card.sort_date.year
        if card.sort_date
        else None
    )
    last = card.authors[0].split()[-1] if card.authors and card.authors[0].split() else "anon"
    word = next((w for w in re.findall(r"[A-Za-z]+", card.title) if len(w) > 3), "paper")
    key = re.sub(r"[^a-z0-9]", "", f"{last}{year or ''}{word}".lower()) or "arxiv"
    fields = [
        ("title", bib_value(card.title)),
        ("author", " and ".join(bib_value(a) for a in card.authors)),
        ("year", str(year) if year else ""),
        ("eprint", card.arxiv_id),
        ("archivePrefix", "arXiv"),
        ("primaryClass", card.primary_category),
        ("doi", card.doi or ""),
        ("journal", bib_value(card.journal_ref or "")),
        ("url", card.abs_url),
    ]
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields if v)
    return f"@misc{{{key},\n{body}\n}}\n"
