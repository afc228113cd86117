"""The full-text index (app.search.fulltext) as a reader meets it through `search_papers`:
natural-language ranking, filters inside the index, paging, keeping in step with the
database (SQLite and PostgreSQL, the `engine` fixture), surviving a failed rebuild, several
processes sharing one index, and handing over to the database while it cannot serve."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine

from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.db.store import upsert_papers
from app.ingest.records import PaperRecord
from app.search import SearchPage, fulltext, search_papers
from app.search.base import NO_TERMS_WARNING
from app.search.fulltext import FullTextIndex
from app.settings import Settings, get_settings
from tests.app.search.strategies import hostile_queries


def paper(
    n: int,
    title: str,
    abstract: str,
    day: date,
    categories: Sequence[str] = ("cs.LG",),
    authors: Sequence[str] = ("Ada Lovelace",),
    version: int = 1,
) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2502.{n:05d}",
        title=title,
        abstract=abstract,
        authors=list(authors),
        primary_category=categories[0],
        categories=list(categories),
        version=version,
        first_submitted_at=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
    )


PAPERS = [
    paper(
        1,
        "Contrastive learning of visual representations",
        "A simple framework for contrastive learning of visual representations with strong "
        "data augmentation.",
        date(2025, 1, 10),
        ["cs.CV", "cs.LG"],
    ),
    paper(
        2,
        "Data augmentation for speech recognition",
        "Warping spectrograms in time and frequency improves acoustic models.",
        date(2025, 2, 10),
        ["eess.AS"],
    ),
    paper(
        3,
        "Representation learning on graphs",
        "Message passing networks embed the nodes of a graph.",
        date(2025, 3, 10),
    ),
    # 4 and 5: the same title, abstracts of the same length holding "loss" and "scaling"
    # once each; only 4 has them side by side.
    paper(
        4,
        "Mixed precision training",
        "Dynamic loss scaling keeps small gradients from vanishing in half precision.",
        date(2025, 4, 10),
    ),
    paper(
        5,
        "Mixed precision training",
        "Small gradients escape loss through dynamic scaling in half precision arithmetic.",
        date(2025, 5, 10),
    ),
    # 6 has "capsule" in its title, 7 only in its (shorter) abstract.
    paper(
        6,
        "Capsule networks",
        "Groups of neurons vote on the pose of every part of an object, and the votes that "
        "agree decide what the next layer sees.",
        date(2025, 6, 10),
        ["cs.CV"],
    ),
    paper(
        7,
        "Routing by agreement",
        "We revisit capsule networks and their routing.",
        date(2025, 7, 10),
        ["cs.CV"],
    ),
    paper(
        8,
        "To be or not to be",
        "On the existence of solutions.",
        date(2025, 8, 10),
        ["math.AP"],
    ),
    paper(
        9,
        "Sparse attention",
        "Attention over a few tokens only.",
        date(2025, 9, 10),
        authors=["Grace Hopper"],
    ),
]


def numbers(page: SearchPage) -> list[int]:
    """Paper numbers, in result order."""
    return [int(h.arxiv_id.split(".")[1]) for h in page.hits]


def search(db: Engine, text: str, **kw: object) -> SearchPage:
    """One search on its own connection, as one web request makes it."""
    with db.connect() as c:
        return search_papers(c, text, **kw)  # type: ignore[arg-type]


def found(db: Engine, text: str, **kw: object) -> list[int]:
    return numbers(search(db, text, **kw))


def store(engine: Engine, records: Sequence[PaperRecord]) -> None:
    with engine.begin() as c:
        upsert_papers(c, records)


def index_of(engine: Engine) -> FullTextIndex:
    index = fulltext.fulltext_for(get_settings(), engine.url)
    assert index is not None
    return index


def everything(engine: Engine) -> list[int]:
    """Every paper the index holds, by listing all dates (a filter-only query)."""
    page = search(engine, "", date_from=date(1990, 1, 1), limit=1000)
    assert page.total == len(page.hits)
    return numbers(page)


def docs(engine: Engine) -> int:
    """How many documents the live generation says it holds."""
    state = index_of(engine).state()
    assert state is not None
    return state.docs


def generations(engine: Engine) -> set[str]:
    return {p.name for p in index_of(engine).root.glob("g-*")}


def live_generation(engine: Engine) -> str:
    return (index_of(engine).root / "CURRENT").read_text().strip()


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    """The index engine (the default), with this test's own data dir."""
    monkeypatch.setenv("PAPERSHELF_SEARCH_ENGINE", "index")
    monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PAPERSHELF_SEARCH_INDEX_PATH", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def db(engine: Engine, site: Settings) -> Engine:
    """SQLite or PostgreSQL with PAPERS stored (the index is built by the first search)."""
    store(engine, PAPERS)
    return engine


@pytest.fixture
def lite(sqlite_engine: Engine, site: Settings) -> Engine:
    """SQLite with PAPERS stored, for what does not depend on the database."""
    store(sqlite_engine, PAPERS)
    return sqlite_engine


# --- natural-language queries --------------------------------------------------------------


def test_a_sentence_finds_the_paper_sharing_most_of_its_words(lite: Engine) -> None:
    text = "how does contrastive learning with data augmentation improve visual features"
    page = search(lite, text)
    assert page.engine == "index"
    assert numbers(page)[0] == 1  # five of the sentence's words
    assert {2, 3} <= set(numbers(page))  # a word or two: found, below
    assert numbers(page).index(1) < numbers(page).index(2)
    # The database engine wants every word, and no abstract has them all.
    assert search(lite, text, engine="database").hits == ()


def test_stop_words_alone_still_search(lite: Engine) -> None:
    page = search(lite, "to be or not to be")
    assert numbers(page)[0] == 8
    assert NO_TERMS_WARNING not in page.warnings


def test_a_title_match_outranks_an_abstract_only_match(lite: Engine) -> None:
    assert found(lite, "capsule") == [6, 7]


def test_adjacent_words_outrank_the_same_words_apart(lite: Engine) -> None:
    page = search(lite, "loss scaling")
    assert numbers(page) == [4, 5]
    assert page.hits[0].score is not None and page.hits[1].score is not None
    assert page.hits[0].score > page.hits[1].score


def test_field_terms_and_quoted_phrases_are_required(lite: Engine) -> None:
    # "routing" alone would find 7; ti:capsule must hold.
    assert found(lite, "ti:capsule routing") == [6]
    assert found(lite, '"loss scaling" precision') == [4]
    assert found(lite, "ti:capsule networks") == [6]  # 7 has them in its abstract only
    # Beside a required term a plain word only adds to the score.
    assert found(lite, "au:hopper capsule") == [9]
    assert found(lite, "au:hopper attention tokens") == [9]


def test_a_minus_term_excludes(lite: Engine) -> None:
    assert found(lite, "capsule -routing") == [6]
    assert found(lite, "loss scaling -arithmetic") == [4]
    assert found(lite, "attention -au:hopper") == []


def test_typed_or_and_make_every_group_required(lite: Engine) -> None:
    assert sorted(found(lite, "speech graphs learning")) == [1, 2, 3]  # any of the words
    assert found(lite, "contrastive AND augmentation") == [1]
    assert found(lite, "contrastive AND speech") == []
    assert found(lite, "speech OR graphs learning") == [3]  # (speech or graphs) and learning
    assert sorted(found(lite, "speech OR graphs")) == [2, 3]


def test_sort_by_date(lite: Engine) -> None:
    assert found(lite, "loss scaling") == [4, 5]
    assert found(lite, "loss scaling", sort="date") == [5, 4]
    assert found(lite, "capsule", sort="date") == [7, 6]
    page = search(lite, "cat:cs.CV")
    assert numbers(page) == [7, 6, 1] and all(h.score is None for h in page.hits)


def test_totals(lite: Engine) -> None:
    page = search(lite, "learning", limit=1)
    assert page.total == 2 and not page.total_capped and page.has_more
    assert search(lite, "learning", limit=1, offset=1).total == 2
    assert search(lite, "zeppelin").total == 0


# --- filters inside the index, paging over many papers ----------------------------------------

QUANTUM = 1_150  # strong matches for "quantum", all in cs.LG and recent


def quantum_papers() -> list[PaperRecord]:
    papers = [
        paper(
            100 + i,
            f"Quantum annealing schedules {i}",
            "quantum " * (1 + i % 4) + ("annealing on quantum hardware" if i % 3 else "hardware"),
            date(2025, 1 + i % 12, 1 + i % 28),
        )
        for i in range(QUANTUM)
    ]
    long_abstract = " ".join(f"filler{j}" for j in range(60))
    return [
        *papers,
        # Weak matches (one mention in a long abstract), each the only one inside a filter.
        paper(
            10,
            "Scheduling by convex relaxation",
            f"A quantum-inspired {long_abstract}.",
            date(2025, 5, 5),
            ["math.OC"],
        ),
        paper(11, "Old heuristics", f"A quantum-inspired {long_abstract}.", date(2019, 5, 5)),
    ]


@pytest.fixture
def many(engine: Engine, site: Settings) -> Engine:
    store(engine, quantum_papers())
    return engine


def test_filters_apply_inside_the_index(many: Engine) -> None:
    best = search(many, "quantum", limit=1)
    assert best.total == 1000 and best.total_capped  # counted up to the cap
    assert numbers(best)[0] >= 100
    # The best match inside the filter, though 1,150 better ones are outside it.
    page = search(many, "quantum cat:math.OC", limit=1)
    assert numbers(page) == [10] and page.total == 1 and not page.total_capped
    assert found(many, "quantum", categories=["math.OC"], limit=1) == [10]
    assert found(many, "quantum date:..2019-12-31", limit=1) == [11]
    assert found(many, "quantum", date_to=date(2019, 12, 31), limit=1) == [11]
    assert found(many, "quantum -cat:cs.LG", limit=1) == [10]
    assert found(many, "quantum cat:math.OC date:..2019-12-31") == []


@pytest.mark.parametrize("sort", ["relevance", "date"])
@pytest.mark.parametrize(
    "text", ["quantum annealing", "quantum"], ids=["adjacent-words", "one-word"]
)
def test_pages_add_up_to_one_long_page(many: Engine, text: str, sort: str) -> None:
    long = search(many, text, sort=sort, limit=240)
    assert len(long.hits) == 240 and long.has_more
    pages = [search(many, text, sort=sort, limit=30, offset=o) for o in range(0, 240, 30)]
    assert [len(p.hits) for p in pages] == [30] * 8
    assert [h for p in pages for h in p.hits] == list(long.hits)
    assert {p.total for p in pages} == {long.total}


# --- keeping in step with the database --------------------------------------------------------


def test_papers_stored_after_the_index_was_built_are_found(db: Engine) -> None:
    assert found(db, "zeppelin") == []  # builds the index
    assert docs(db) == len(PAPERS)
    store(db, [paper(20, "Zeppelin aerodynamics", "Airships.", date(2025, 10, 1))])
    assert found(db, "zeppelin") == [20]  # the next search catches up
    assert docs(db) == len(PAPERS) + 1
    assert len(everything(db)) == len(PAPERS) + 1


def test_an_updated_paper_is_found_by_its_new_title_only(db: Engine) -> None:
    assert found(db, "capsule") == [6, 7]
    newer = paper(
        6,
        "Stacked hourglass pose estimators",
        PAPERS[5].abstract,
        date(2025, 6, 10),
        ["cs.CV"],
        version=2,
    )
    store(db, [newer])
    assert found(db, "hourglass") == [6]
    assert found(db, "capsule") == [7]
    assert found(db, "ti:capsule") == []
    assert search(db, "hourglass").hits[0].title == "Stacked hourglass pose estimators"
    assert sorted(everything(db)) == sorted(numbers_of(PAPERS))  # no second copy of 6


def numbers_of(records: Sequence[PaperRecord]) -> list[int]:
    return [int(r.arxiv_id.split(".")[1]) for r in records]


def test_a_database_recreated_at_the_same_path_gets_a_fresh_index(
    sqlite_url: str, site: Settings
) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    store(engine, PAPERS)
    assert found(engine, "capsule") == [6, 7]
    engine.dispose()
    path = Path(sa.make_url(sqlite_url).database or "")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    store(
        engine,
        [
            paper(30, "Kelp forests", "Seaweed.", date(2025, 1, 1)),
            paper(31, "Coral reefs", "Polyps.", date(2025, 1, 2)),
        ],
    )
    try:
        assert found(engine, "capsule") == []  # no ghosts of the old database
        assert found(engine, "to be or not to be") == []
        assert found(engine, "kelp") == [30]
        assert sorted(everything(engine)) == [30, 31]
        assert docs(engine) == 2
    finally:
        engine.dispose()


def test_re_reading_the_window_is_harmless(db: Engine) -> None:
    index = index_of(db)
    index.rebuild(db)
    assert index.sync(db) == 0  # nothing changed
    newer = paper(
        9,
        "Sparse attention",
        "Attention over a few tokens only, revised.",
        date(2025, 9, 10),
        authors=["Grace Hopper"],
        version=2,
    )
    store(db, [newer])
    # Every paper stored within the re-read window is read again, each replacing itself.
    assert index.sync(db) == len(PAPERS)
    assert index.sync(db) == 0
    for _ in range(2):
        assert docs(db) == len(PAPERS)
        assert sorted(everything(db)) == numbers_of(PAPERS)
        assert found(db, "revised") == [9]
        assert found(db, "attention") == [9]


# --- crash safety ---------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_rebuild_leaves_the_old_generation_serving(
    lite: Engine, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    index = index_of(lite)
    index.rebuild(lite)
    live = live_generation(lite)
    assert generations(lite) == {live}
    documents: list[object] = []
    midway: list[tuple[str, set[str]]] = []  # (CURRENT, generations) as the build died
    real = fulltext._document

    def dies_half_way(row: object, has_tldr: bool) -> object:
        if len(documents) == 3:
            # Half-way: the new generation is being written, CURRENT still names the old.
            midway.append((live_generation(lite), generations(lite)))
            raise error("killed half-way")
        documents.append(row)
        return real(row, has_tldr)

    monkeypatch.setattr(fulltext, "_document", dies_half_way)
    with pytest.raises(error):
        index.rebuild(lite)
    monkeypatch.undo()
    [(current_then, generations_then)] = midway
    assert current_then == live and len(generations_then) == 2
    assert live_generation(lite) == live
    assert generations(lite) == {live}  # the failed generation is gone
    assert found(lite, "capsule") == [6, 7]
    assert docs(lite) == len(PAPERS)


def test_current_names_a_new_generation_only_once_it_is_complete(
    lite: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = index_of(lite)
    index.rebuild(lite)
    old = live_generation(lite)
    published: list[tuple[str, str, int | None]] = []
    real = FullTextIndex._publish

    def spy(self: FullTextIndex, gen: Path) -> None:
        state = fulltext.State.read(gen)
        published.append((live_generation(lite), gen.name, state.docs if state else None))
        real(self, gen)

    monkeypatch.setattr(FullTextIndex, "_publish", spy)
    index.rebuild(lite)
    [(current_then, new, docs)] = published
    assert current_then == old and docs == len(PAPERS)  # whole before it is named
    assert live_generation(lite) == new != old
    assert generations(lite) == {new}
    assert found(lite, "capsule") == [6, 7]


# --- several processes -------------------------------------------------------------------


def in_another_process(engine: Engine, action: str) -> subprocess.Popen[str]:
    """`fulltext.<action>(settings, engine)` in a new Python process (same settings)."""
    url = engine.url.render_as_string(hide_password=False)
    code = (
        "from app.db.engine import make_engine\n"
        "from app.search import fulltext\n"
        "from app.settings import get_settings\n"
        f"engine = make_engine({url!r})\n"
        f"fulltext.{action}(get_settings(), engine)\n"
        "engine.dispose()\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def test_another_process_s_sync_reaches_this_reader(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert found(db, "capsule") == [6, 7]  # this process opens the index
    store(db, [paper(40, "Capsule endoscopy", "Swallowed cameras.", date(2025, 11, 1))])
    finish(in_another_process(db, "sync"))

    def no_writing(*_a: object, **_kw: object) -> None:
        raise AssertionError("this process must not write the index")

    monkeypatch.setattr(FullTextIndex, "sync", no_writing)
    monkeypatch.setattr(FullTextIndex, "rebuild", no_writing)
    assert sorted(found(db, "capsule")) == [6, 7, 40]
    assert found(db, "endoscopy") == [40]


def test_two_processes_writing_at_once(site: Settings, sqlite_engine: Engine) -> None:
    store(sqlite_engine, [*PAPERS, *quantum_papers()])
    first = in_another_process(sqlite_engine, "sync")
    second = in_another_process(sqlite_engine, "rebuild")
    finish(first)
    finish(second)
    total = len(PAPERS) + QUANTUM + 2
    assert docs(sqlite_engine) == total
    assert len(generations(sqlite_engine)) == 1
    assert found(sqlite_engine, "capsule") == [6, 7]
    assert search(sqlite_engine, "quantum cat:math.OC").total == 1
    page = search(sqlite_engine, "", date_from=date(1990, 1, 1), limit=1000)
    assert page.total == 1000 and len(set(numbers(page))) == 1000


# --- an index that cannot serve yet -----------------------------------------------------------


def test_an_index_that_cannot_serve_hands_over_to_the_database(
    db: Engine, site: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More papers than a search may index inline, and no index yet.
    monkeypatch.setattr(fulltext, "INLINE_SYNC_LIMIT", 0)
    page = search(db, "contrastive augmentation")
    assert page.engine == "database"
    assert any("being built" in n for n in page.notices)
    assert numbers(page) == [1]  # the database's rules: every word required
    assert found(db, "speech augmentation") == [2]

    fulltext.rebuild(site, db)  # what `papershelf reindex` does
    page = search(db, "contrastive augmentation")
    assert page.engine == "index" and page.notices == []
    assert numbers(page)[0] == 1 and 2 in numbers(page)


# --- any text is safe -----------------------------------------------------------------------


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=hostile_queries())
def test_any_query_runs_on_the_index(lite: Engine, text: str) -> None:
    for sort in ("relevance", "date"):
        for categories in ((), ("cs.CV",)):
            page = search(lite, text, sort=sort, categories=categories, limit=5)
            assert page.engine == "index"
            assert page.total >= len(page.hits)
