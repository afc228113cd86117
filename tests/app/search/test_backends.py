"""Both search backends against real, migrated databases (the `engine` fixture runs each test
on SQLite and on PostgreSQL), loaded through the store's own upsert."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine

from app.db.store import upsert_papers
from app.ingest.records import PaperRecord
from app.ingest.text import clean_text
from app.search import SearchPage, backend_for, fulltext, parse_query, search_papers
from app.search.postgres import PostgresBackend
from app.search.sqlite_fts import SqliteFtsBackend, compile_positive
from app.settings import get_settings
from tests.app.search.strategies import hostile_queries


def paper(
    n: int,
    title: str,
    abstract: str,
    authors: list[str],
    categories: list[str],
    day: date,
    version: int = 1,
) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2501.{n:05d}",
        title=title,
        abstract=abstract,
        authors=authors,
        primary_category=categories[0],
        categories=categories,
        version=version,
        first_submitted_at=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
    )


PAPERS = [
    paper(
        1,
        "Attention Is All You Need",
        "The dominant sequence transduction models are based on recurrent networks. "
        "We propose the Transformer.",
        ["Ashish Vaswani", "Noam Shazeer", "Łukasz Kaiser"],
        ["cs.CL", "cs.LG"],
        date(2025, 1, 10),
    ),
    paper(
        2,
        "Sparse mixtures of experts",
        "We study routing tokens to experts; the attention layers are unchanged.",
        ["William Fedus"],
        ["cs.LG"],
        date(2025, 2, 10),
    ),
    paper(
        3,
        "Deep learning",
        "Deep learning allows computational models to learn representations of data.",
        ["Yann LeCun", "Yoshua Bengio", "Geoffrey Hinton"],
        ["cs.LG", "stat.ML"],
        date(2025, 3, 1),
    ),
    paper(
        4,
        "Dynamic routing between capsules",
        "A capsule is a group of neurons; agreement between capsules replaces attention.",
        ["Sara Sabour", "Nicholas Frosst", "Geoffrey E. Hinton"],
        ["cs.CV"],
        date(2025, 4, 1),
    ),
    paper(
        5,
        clean_text(r"Schr\"odinger bridges for generative modelling"),
        "Bridges between two distributions, trained with a diffusion objective.",
        ["Valentin De Bortoli"],
        ["stat.ML"],
        date(2025, 5, 1),
    ),
    paper(
        6,
        "A survey of state-of-the-art graph neural networks",
        "We review message passing models on graphs.",
        ["Zonghan Wu"],
        ["cs.LG"],
        date(2025, 6, 1),
    ),
    paper(
        7,
        "Finite state machines in the art of compiler design",
        "Lexers are automata; we revisit their construction.",
        ["Alfred Aho"],
        ["cs.PL"],
        date(2025, 6, 2),
    ),
    paper(
        8,
        "Learned image compression",
        "An end-to-end optimised codec for images.",
        ["Johannes Balle"],
        ["eess.IV", "cs.CV"],
        date(2025, 7, 1),
    ),
    paper(
        9,
        "Diffusion models beat GANs on image synthesis",
        "We show that diffusion models achieve superior sample quality.",
        ["Prafulla Dhariwal", "Alex Nichol"],
        ["cs.CV", "cs.LG"],
        date(2025, 8, 15),
    ),
    paper(
        10,
        "Flow matching for generative modeling",
        "A simulation-free approach to training continuous normalizing flows.",
        ["Yaron Lipman"],
        ["cs.LG"],
        date(2025, 9, 20),
    ),
    paper(
        11,
        "Revisiting Hinton's forward-forward algorithm",
        "Training without backpropagation.",
        ["Alice Smith"],
        ["cs.NE"],
        date(2025, 10, 5),
    ),
]


@pytest.fixture(params=["database", "index"])
def search_engine(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """Every test below runs on the database's own backend and on the full-text index:
    they keep the same syntax (only plain words differ, see the tests that say so)."""
    monkeypatch.setenv("PAPERSHELF_SEARCH_ENGINE", request.param)
    monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield request.param
    get_settings.cache_clear()


@pytest.fixture
def conn(engine: Engine, search_engine: str) -> Iterator[Connection]:
    with engine.begin() as c:
        upsert_papers(c, PAPERS)
    with engine.connect() as c:
        yield c


def ids(page: SearchPage) -> list[int]:
    """Paper numbers, in result order."""
    return [int(h.arxiv_id.split(".")[1]) for h in page.hits]


def found(conn: Connection, text: str, **kw: object) -> list[int]:
    return ids(search_papers(conn, text, **kw))  # type: ignore[arg-type]


# --- matching --------------------------------------------------------------------------


def test_backend_matches_dialect(engine: Engine) -> None:
    expected = SqliteFtsBackend if engine.dialect.name == "sqlite" else PostgresBackend
    assert isinstance(backend_for(engine), expected)
    assert isinstance(backend_for(engine.dialect.name), expected)
    with pytest.raises(ValueError, match="no search backend"):
        backend_for("oracle")


def test_title_match_ranks_above_abstract_only_matches(conn: Connection) -> None:
    page = search_papers(conn, "attention")
    assert ids(page)[0] == 1
    assert sorted(ids(page)) == [1, 2, 4]
    assert page.total == 3 and not page.total_capped and not page.has_more
    scores = [h.score for h in page.hits]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert page.hits[0].title == "Attention Is All You Need"
    assert page.hits[0].sort_date == date(2025, 1, 10)
    assert page.hits[0].authors[0] == "Ashish Vaswani"
    assert page.query is not None and page.query.highlight_terms() == ("attention",)


def test_plain_words(conn: Connection, search_engine: str) -> None:
    if search_engine == "database":
        # Every word is required.
        assert found(conn, "attention transformer") == [1]
        assert found(conn, "attention capsules experts") == []
    else:
        # Natural language: words are optional, papers matching more of them rank first.
        assert found(conn, "attention transformer")[0] == 1
        assert sorted(found(conn, "attention transformer")) == [1, 2, 4]
        assert found(conn, "attention capsules experts") != []
        # An explicit AND keeps every word required.
        assert found(conn, "attention AND transformer") == [1]
        assert found(conn, "attention AND capsules AND experts") == []


def test_author_search(conn: Connection) -> None:
    assert sorted(found(conn, "au:hinton")) == [3, 4]
    # Without the field, the paper with Hinton in its title is found too.
    assert sorted(found(conn, "hinton")) == [3, 4, 11]
    assert found(conn, "ti:hinton") == [11]


def test_author_search_unstemmed(conn: Connection) -> None:
    # "Bengio"/"Sabour" are not English words; a stemmer must not get in the way.
    assert found(conn, "au:bengio") == [3]
    assert found(conn, 'au:"sara sabour"') == [4]
    assert found(conn, "sabour") == [4]


def test_non_ascii_author(conn: Connection) -> None:
    assert found(conn, "au:łukasz") == [1]


def test_phrase_matches_adjacent_words_only(conn: Connection, search_engine: str) -> None:
    assert found(conn, '"state of the art"') == [6]
    if search_engine == "database":
        assert found(conn, "state-of-the-art") == [6]
        assert sorted(found(conn, "state art")) == [6, 7]
    else:
        # A plain compound's words are optional; found as typed, it ranks first.
        assert found(conn, "state-of-the-art")[0] == 6
        assert found(conn, "state art")[:2] in ([6, 7], [7, 6])
    assert found(conn, '"art state"') == []


def test_exclusion_removes(conn: Connection) -> None:
    assert sorted(found(conn, "attention -transformer")) == [2, 4]
    assert sorted(found(conn, 'attention -"mixtures of experts"')) == [1, 4]
    assert sorted(found(conn, "hinton -au:hinton")) == [11]


def test_or_widens(conn: Connection) -> None:
    assert found(conn, "capsules") == [4]
    assert sorted(found(conn, "capsules OR compression")) == [4, 8]
    # a AND (b OR c)
    assert sorted(found(conn, "image diffusion OR compression")) == [8, 9]


def test_stemming(conn: Connection) -> None:
    assert sorted(found(conn, "learning")) == [3, 8]
    assert sorted(found(conn, "ti:learning")) == [3, 8]


def test_decoded_tex_accents(conn: Connection, engine: Engine) -> None:
    assert found(conn, "Schrödinger") == [5]
    assert found(conn, "ti:schrödinger bridges") == [5]
    if engine.dialect.name == "sqlite":  # FTS5 folds diacritics; PostgreSQL's index keeps them
        assert found(conn, "Schrodinger") == [5]


def test_punctuation_and_syntax_are_just_text(conn: Connection, search_engine: str) -> None:
    assert found(conn, "attention \" ^ * : ( ) {} '") == found(conn, "attention")
    # "near", "drop" and "table" are words like any other.
    if search_engine == "database":
        assert found(conn, "NEAR(attention capsules)") == []
        assert found(conn, "attention'; DROP TABLE papers; --") == []
    else:  # optional words: the papers with "attention" or "capsules"
        assert sorted(found(conn, "NEAR(attention capsules)")) == [1, 2, 4]
        assert found(conn, "attention'; DROP TABLE papers; --") == found(conn, "attention")
    assert search_papers(conn, "deep").total == 1  # the table is still there


# --- filters before ranking -------------------------------------------------------------


def test_category_filter_applies_before_ranking(conn: Connection) -> None:
    # The best match overall (1, title) is not in cs.CV: the best one inside it comes back.
    assert found(conn, "attention cat:cs.CV", limit=1) == [4]
    assert found(conn, "attention", categories=["cs.CV"], limit=1) == [4]
    assert found(conn, "attention cat:cs", limit=1) == [1]  # the whole archive
    assert sorted(found(conn, "attention -cat:cs.CL")) == [2, 4]
    # Caller's categories and cat: terms must both hold.
    assert found(conn, "attention cat:cs.CV", categories=["cs.CL"]) == []


def test_date_filter_applies_before_ranking(conn: Connection) -> None:
    assert found(conn, "attention date:2025-02", limit=1) == [2]
    assert found(conn, "attention date:2025-03-01..", limit=1) == [4]
    assert sorted(found(conn, "attention date:2025-02-01..")) == [2, 4]
    assert found(conn, "attention date:..2025-01-31") == [1]
    page = search_papers(conn, "attention", date_from=date(2025, 3, 1), limit=1)
    assert ids(page) == [4] and page.total == 1


def test_filters_without_terms_list_by_date(conn: Connection) -> None:
    assert found(conn, "cat:cs.CV") == [9, 8, 4]
    assert found(conn, "cat:cs.CV -diffusion") == [8, 4]
    assert found(conn, "-diffusion", categories=["cs.CV"]) == [8, 4]
    assert found(conn, "", date_from=date(2025, 9, 1)) == [11, 10]
    page = search_papers(conn, "date:2025-06")
    assert ids(page) == [7, 6] and all(h.score is None for h in page.hits)


def test_nothing_usable_gives_an_empty_page_with_a_warning(conn: Connection) -> None:
    for text in ["", "   ", 'OR - -- ""', "ti:", "-diffusion"]:
        page = search_papers(conn, text)
        assert page.hits == () and page.total == 0
        assert page.warnings


def test_query_warnings_reach_the_page(conn: Connection) -> None:
    page = search_papers(conn, "capsules cat:foo.BAR date:2025-13-40")
    assert ids(page) == [4]
    assert "unknown category foo.BAR" in page.warnings
    assert "ignored invalid date 2025-13-40" in page.warnings


# --- ordering and paging ----------------------------------------------------------------


def test_sort_by_date(conn: Connection) -> None:
    assert found(conn, "learning", sort="date") == [8, 3]
    assert found(conn, "attention", sort="date") == [4, 2, 1]


def test_paging(conn: Connection) -> None:
    everything = found(conn, "cat:cs.LG", limit=100)
    assert everything == [10, 9, 6, 3, 2, 1]
    pages = [search_papers(conn, "cat:cs.LG", limit=4, offset=o) for o in (0, 4, 8)]
    assert [ids(p) for p in pages] == [[10, 9, 6, 3], [2, 1], []]
    assert [p.total for p in pages] == [6, 6, 6]
    assert [p.has_more for p in pages] == [True, False, False]
    ranked = found(conn, "attention")
    assert found(conn, "attention", limit=1, offset=1) == ranked[1:2]


def test_total_is_capped(conn: Connection) -> None:
    backend = backend_for(conn, max_results=4)
    query = parse_query("cat:cs.LG")
    page = backend.search(conn, query, limit=3)
    assert len(page.hits) == 3 and page.total == 4 and page.total_capped
    assert ids(backend.search(conn, query, limit=3, offset=3)) == [3]  # stops at the cap
    assert backend.search(conn, query, limit=3, offset=4).hits == ()


# --- keeping the index in step ----------------------------------------------------------


def test_updated_paper_is_found_by_its_new_title_only(engine: Engine, conn: Connection) -> None:
    assert found(conn, "matching") == [10]
    conn.commit()  # end the read transaction so the new version is visible
    newer = paper(
        10,
        "Rectified flow transformers",
        PAPERS[9].abstract,
        ["Yaron Lipman"],
        ["cs.LG"],
        date(2025, 9, 20),
        version=2,
    )
    with engine.begin() as c:
        upsert_papers(c, [newer])
    assert found(conn, "rectified") == [10]
    assert found(conn, "matching") == []
    assert search_papers(conn, "ti:transformers").hits[0].title == "Rectified flow transformers"
    if engine.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "INSERT INTO papers_fts(papers_fts, rank) VALUES('integrity-check', 1)"
        )


def test_rebuild_gives_the_same_results(engine: Engine, conn: Connection) -> None:
    queries = ["attention", "au:hinton", '"state of the art"', "learning -image", "cat:cs.CV"]
    before = [found(conn, q) for q in queries]
    conn.commit()
    with engine.begin() as c:
        backend_for(c).rebuild(c)
    fulltext.rebuild(get_settings(), engine)
    assert [found(conn, q) for q in queries] == before


def test_postgres_search_uses_the_gin_index(pg_engine: Engine) -> None:
    with pg_engine.begin() as c:
        upsert_papers(c, PAPERS)
        c.exec_driver_sql("SET LOCAL enable_seqscan = off")
        backend = backend_for(c)
        match = backend.text_match(parse_query("attention -survey"))
        stmt = sa.select(sa.literal(1)).select_from(match.from_).where(match.where)
        compiled = stmt.compile(c, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in c.exec_driver_sql(f"EXPLAIN {compiled}"))
    assert "ix_papers_search_vector" in plan


# --- any text is safe -------------------------------------------------------------------


def _search_all_ways(conn: Connection, text: str, categories: Sequence[str] = ()) -> None:
    for sort in ("relevance", "date"):
        page = search_papers(conn, text, sort=sort, categories=categories, limit=5)  # type: ignore[arg-type]
        assert page.total >= len(page.hits)


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(text=st.text() | hostile_queries())
@example(text='OR - -- ""')
@example(text='"')
@example(text="\x00")
def test_any_query_runs_on_sqlite(sqlite_engine: Engine, text: str) -> None:
    with sqlite_engine.begin() as c:
        if not c.exec_driver_sql("SELECT 1 FROM papers LIMIT 1").first():
            upsert_papers(c, PAPERS)
    with sqlite_engine.connect() as c:
        _search_all_ways(c, text)
        expr = compile_positive(parse_query(text))
        if expr is not None:  # the raw expression too, straight into MATCH
            c.exec_driver_sql("SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?", (expr,))


@settings(FUZZ, max_examples=100)
@given(text=st.text() | hostile_queries())
@example(text='OR - -- ""')
@example(text="'\\''")
def test_any_query_runs_on_postgres(pg_engine: Engine, text: str) -> None:
    with pg_engine.begin() as c:
        if not c.exec_driver_sql("SELECT 1 FROM papers LIMIT 1").first():
            upsert_papers(c, PAPERS)
    with pg_engine.connect() as c:
        _search_all_ways(c, text)


def _long_queries() -> list[str]:
    rng = random.Random(99)
    alphabet = "ab é\"-:.()*^'\\!&|<>OR\x00\u4e00\U0001f600\n"
    words = ["attention", "OR", "-survey", '"state of', "ti:", "cat:cs", "date:2025", "NEAR("]
    return [
        "".join(rng.choice(alphabet) for _ in range(12_000)),
        " ".join(rng.choice(words) for _ in range(3_000)),
        "attention " * 2_000,
        '"' + "graph " * 2_000 + '"',
        "x" * 20_000,
        "OR " * 4_000,
    ]


@pytest.mark.parametrize("text", _long_queries(), ids=lambda t: t[:12])
def test_10kb_queries_run(conn: Connection, text: str) -> None:
    page = search_papers(conn, text)
    assert "query truncated to 10000 characters" in page.warnings
    _search_all_ways(conn, text, categories=["cs.LG"])


def test_has_tldr_filter_follows_new_tldrs(engine: Engine, conn: Connection) -> None:
    from app.db.models import Summary

    assert found(conn, "attention has:tldr") == []
    assert sorted(found(conn, "attention -has:tldr")) == [1, 2, 4]
    conn.commit()
    with engine.begin() as c:
        c.execute(
            sa.insert(Summary.__table__).values(
                arxiv_id="2501.00004",
                paper_version=1,
                model_version="test",
                tldr="Capsules route by agreement.",
                created_at=datetime.now(UTC),
            )
        )
    # Written after the index last looked: the filter sees it at once.
    assert found(conn, "attention has:tldr") == [4]
    assert sorted(found(conn, "attention -has:tldr")) == [1, 2]
    assert found(conn, "has:tldr") == [4]
