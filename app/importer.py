"""Import files into the store: detect the format, stream pages, upsert each page in its
own transaction.

A page that fails to write rolls back whole (no partial rows). Earlier pages stay
committed; because every write is an idempotent upsert, running the same import again
completes it without duplicating anything. Records the parser rejects are reported
with file and line and skipped; a file that cannot be read at all writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from app.db import store
from app.ingest.formats import detect_format, read_file
from app.ingest.records import DocumentError, RecordError


@dataclass(slots=True)
class ImportReport:
    path: str
    format: str = ""
    papers: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    announcements: int = 0
    venue_papers: int = 0
    linked: int = 0
    errors: list[RecordError] = field(default_factory=list)
    failed: str | None = None  # why the whole file was rejected

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "format": self.format,
            "papers": self.papers,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "announcements": self.announcements,
            "venue_papers": self.venue_papers,
            "linked": self.linked,
            "errors": [str(e) for e in self.errors],
            "failed": self.failed,
        }


def import_file(
    engine: Engine,
    path: Path,
    *,
    venue: str | None = None,
    batch_size: int = 2000,
    on_page: Callable[[int], None] | None = None,
) -> ImportReport:
    report = ImportReport(path=str(path))
    try:
        report.format = detect_format(path)
        pages = read_file(path, batch_size=batch_size, venue=venue)
        for page in pages:
            report.errors.extend(page.errors)
            with engine.begin() as conn:
                if page.venue_papers:
                    name = page.venue_papers[0].venue
                    report.venue_papers += store.upsert_venue(conn, name, page.venue_papers)
                if page.papers:
                    counts = store.upsert_papers(conn, page.papers)
                    report.papers += len(page.papers)
                    report.inserted += counts.inserted
                    report.updated += counts.updated
                    report.unchanged += counts.unchanged
                    report.announcements += counts.announcements
            if on_page:
                on_page(len(page.papers) + len(page.venue_papers) + len(page.errors))
    except DocumentError as exc:
        report.failed = str(exc)
        return report
    except OSError as exc:
        report.failed = f"{path}: {exc.strerror or exc}"
        return report
    # New papers can complete links to venues imported earlier, and vice versa.
    if report.venue_papers or report.inserted or report.updated:
        with engine.begin() as conn:
            report.linked = store.link_venues(conn)
    return report
